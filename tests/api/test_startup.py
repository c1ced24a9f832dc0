"""The start-up check of `pgaas run` and `pgaas worker` (services/startup.py) without containers, on SQLite and
PostgreSQL metadata: an available instance whose containers the provider reports stopped gets one start job,
queued by pgaas-startup, shown in its jobs, events and audit log, the instance `starting`; an instance with
nothing stopped, busy with another job or not available gets none; when the job ends, or is canceled before it
starts, the instance is available again (with the reason when the start did not finish, until the sampler sees
the pair whole)."""
from datetime import datetime, timezone

import pytest

from webapp.jobs.types import Outcome
from webapp.services import failover, startup
from webapp.services import jobs as jobsvc
from webapp.services.handlers.lifecycle import StartHandler
from webapp.services.instances import ClusterState
from webapp.store.models import Instance, Job


class Provider:
    """The seam the check uses: podman's state of the containers on this machine."""

    def __init__(self, states: dict[str, str]):
        self.states = states

    def local_containers(self) -> dict[str, str]:
        return self.states


STOPPED = {"pgaas-main-etcd": "exited", "pgaas-main-0": "running", "pgaas-main-1": "created",
           "pgaas-other-0": "exited"}


@pytest.fixture
def main(live):
    """Instance main, available (its create job marked done: no worker runs here)."""
    r = live.admin.post("/api/v1/instances", json={"name": "main", "synchronous": True})
    assert r.status_code == 202, r.text
    with live.app.extensions["pgaas"].store.session() as s:
        s.get(Job, r.json()["job"]["id"]).status = "succeeded"
        s.query(Instance).filter_by(name="main").one().status = "available"
    return live


def stored(live) -> Instance:
    """The instance as stored (the API would add Patroni's live view, and no Patroni runs here)."""
    with live.app.extensions["pgaas"].store.session() as s:
        return s.query(Instance).filter_by(name="main").one()


def check(live, states):
    return startup.start_stopped(live.app.extensions["pgaas"].store.session, Provider(states))


def test_stopped_containers_get_one_start_job_by_pgaas_startup(main):
    jobs = check(main, STOPPED)
    assert [(j.kind, j.instance_name, j.created_by) for j in jobs] == [("instance_start", "main", "pgaas-startup")]
    inst = main.admin.get("/api/v1/instances/main").json()
    assert inst["status"] == "starting" and f"job {jobs[0].id} starts them" in inst["status_reason"], inst
    job = main.admin.get(f"/api/v1/jobs/{jobs[0].id}").json()
    found = next(e for e in job["events"] if e["event"] == "pgaas_startup")["message"]
    assert "pgaas-main-etcd (exited)" in found and "pgaas-main-1 (created)" in found, found
    assert "pgaas-main-0" not in found and "pgaas-other" not in found, found
    audit = main.admin.get("/api/v1/admin/audit?object=main").json()["events"]
    assert [(e["actor"], e["action"]) for e in audit if e["action"] == "instance.start"] == \
        [("pgaas-startup", "instance.start")], audit
    # one job per instance: a second control plane starting now finds it starting, not available
    assert check(main, STOPPED) == []


def test_nothing_stopped_busy_or_not_available_gets_no_job(main):
    assert check(main, {n: "running" for n in STOPPED}) == []
    store = main.app.extensions["pgaas"].store
    with store.session() as s:
        busy = jobsvc.enqueue(s, "instance_restart", "main", "root").id
    assert check(main, STOPPED) == []  # the restart job holds the instance's lock
    assert stored(main).status == "available"
    with store.session() as s:
        s.get(Job, busy).status = "succeeded"
        s.query(Instance).filter_by(name="main").one().status = "failed"
    assert check(main, STOPPED) == []


def test_the_end_of_the_start_job_puts_the_instance_back_to_available(main):
    [job] = check(main, STOPPED)
    r = main.admin.post(f"/api/v1/jobs/{job.id}/cancel")  # canceled before a worker took it
    assert r.status_code == 202 and r.json()["job"]["status"] == "canceled", r.text
    inst = stored(main)
    assert inst.status == "available" and f"canceled (job {job.id})" in inst.status_reason, inst.status_reason
    # the reason stays while the pair is not whole; the sampler clears it once Patroni shows it whole again
    with main.app.extensions["pgaas"].store.session() as s:
        inst = s.query(Instance).filter_by(name="main").one()
        failover.observe(s, inst, ClusterState(True, problem="no running primary"))
        assert inst.status_reason
        failover.observe(s, inst, ClusterState(True, healthy=True))
    assert stored(main).status_reason == ""

    [job] = check(main, STOPPED)
    svc = main.app.extensions["pgaas"]
    handler = StartHandler(svc.box, "image")
    with svc.store.session() as s:
        j = s.get(Job, job.id)
        assert handler.prepare(s, j).playbook == "playbooks/instance_start.yml"
        j.status, j.finished_at = "succeeded", datetime.now(timezone.utc)
        handler.finish(s, j, Outcome("successful", artifact_data={"pgaas_result": {
            "leader": "pgaas-main-0", "started": {"localhost": ["pgaas-main-etcd", "pgaas-main-1"]}}}))
    inst = stored(main)
    assert inst.status == "available" and inst.status_reason == "", inst.status_reason
    assert inst.meta["last_start"]["started"] == {"localhost": ["pgaas-main-etcd", "pgaas-main-1"]}


def test_members_on_other_hosts_are_judged_by_patroni():
    """ssh provider: the etcd member on the control plane by podman; members on hosts by Patroni's view (an etcd
    member on another host is not judged: Patroni keeps working with a quorum)."""
    from webapp.services.instances import MemberState
    from webapp.store.models import Member

    inst = Instance(name="far", meta={"etcd_members": [{"name": f"pgaas-far-etcd-{i}", "host": h} for i, h in
                                                       enumerate(("h0", "h1", "localhost"))]})
    inst.members = [Member(name=f"pgaas-far-{i}", host=f"h{i}") for i in (0, 1)]
    assert startup.stopped(inst, {"pgaas-far-etcd-2": "exited"}, ClusterState(False)) == [
        "pgaas-far-etcd-2 (exited)", "pgaas-far-0 (no Patroni member answers)",
        "pgaas-far-1 (no Patroni member answers)"]

    def member(i, state):
        return MemberState(name=f"pgaas-far-{i}", host=f"h{i}", address="", port=0, container="", state=state)

    assert startup.stopped(inst, {"pgaas-far-etcd-2": "running"}, ClusterState(
        True, primary=member(0, "running"), replicas=[member(1, "stopped")])) == ["pgaas-far-1 (Patroni: stopped)"]
    assert startup.stopped(inst, {}, ClusterState(True, primary=member(0, "running"),
                                                  replicas=[member(1, "streaming")], healthy=True)) == []
