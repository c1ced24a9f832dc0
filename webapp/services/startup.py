"""Instances after a host restart, where no systemd starts their containers at boot (this machine, the test lab).

`pgaas run` and `pgaas worker` call `start_stopped()` when they start: every available instance with a stopped
container gets one `instance_start` job (playbooks/instance_start.yml), queued by the actor `pgaas-startup` and
recorded in the audit log. The job starts the instance's existing etcd containers, then its members (`podman
start`: nothing is recreated, no data is touched), and waits until the leader takes writes and every standby
streams. Meanwhile the instance is `starting`; when the job ends it is `available` again, with the reason in
`status_reason` when not everything came back (instances.start_ended; the job's handler is
services/handlers/lifecycle.py).

What is stopped: podman's state of the containers on the control plane's own machine (one `podman ps` call for
every instance, `provider.local_containers()`); for members on other hosts, Patroni's view (a member it does not
report running). Hosts that boot systemd start the containers themselves (roles/container_engine writes
pgaas-containers.service there); this check then finds nothing to do.

The backup repository's container (playbooks/backup_repo.yml) runs on the control plane's machine whatever the
provider: when backups are on and the repository was ever configured, `start_repo()` queues one `backup_repo` job at
start, which starts the container if a restart left it stopped and changes nothing otherwise (a few seconds).
"""
from __future__ import annotations

import logging

from sqlalchemy import select

from webapp.services import Conflict, audit, backups
from webapp.services import instances as isvc
from webapp.services import jobs as jobsvc
from webapp.store.models import BackupRepo, Instance, Job, JobEvent

log = logging.getLogger(__name__)

STARTUP_ACTOR = audit.Actor("pgaas-startup", is_admin=True)
# podman states of a container that `podman start` brings back (a reboot leaves them exited or created)
STARTABLE = ("exited", "stopped", "created", "configured")
RUNNING = ("running", "streaming")


def containers(inst: Instance) -> list[tuple[str, str]]:
    """(container, host) of everything the instance runs, etcd first, as the deploy placed it."""
    etcd = [(e["name"], e["host"]) for e in isvc.etcd_members(inst)]
    if not etcd and inst.members:
        etcd = [(f"pgaas-{inst.name}-etcd", inst.members[0].host)]
    return etcd + [(m.name, m.host) for m in inst.members]


def stopped(inst: Instance, here: dict[str, str], live: isvc.ClusterState | None) -> list[str]:
    """What of the instance is stopped, each with the state seen: its containers on this machine as podman
    reports them, its members on other hosts as Patroni does (None: nobody asked Patroni)."""
    out = []
    members = {m.name for m in inst.members}
    for name, host in containers(inst):
        if host == "localhost":
            if here.get(name) in STARTABLE:
                out.append(f"{name} ({here[name]})")
        elif name in members and live is not None and not live.reachable:
            out.append(f"{name} (no Patroni member answers)")
        elif name in members and live is not None:
            state = next((ms.state for ms in ([live.primary] if live.primary else []) + live.replicas
                          if ms.name == name), "missing")
            if state not in RUNNING:
                out.append(f"{name} (Patroni: {state})")
    return out


def start_stopped(session, provider, timeout: float = 1.0) -> list[Job]:
    """Queue one start job per available instance that has a stopped container; each in its own transaction.
    An instance busy with another job is left to that job (the lock allows one active job per instance)."""
    here = provider.local_containers()
    with session() as s:
        insts = list(s.scalars(select(Instance).where(Instance.status == "available").order_by(Instance.name)))
        remote = [i for i in insts if any(host != "localhost" for _, host in containers(i))]
        live = isvc.live_states(remote, timeout)
        found = {i.name: stopped(i, here, live.get(i.name)) for i in insts}
    jobs = []
    for name, what in found.items():
        if not what:
            continue
        try:
            with session() as s:
                jobs.append(_queue(s, isvc.get(s, name), what))
        except Conflict as exc:
            log.info("instance %s has stopped containers but is busy: %s", name, exc.message)
    return jobs


def _queue(s, inst: Instance, what: list[str]) -> Job:
    job = jobsvc.enqueue(s, "instance_start", inst.name, STARTUP_ACTOR.username, params={"stopped": what})
    found = f"the control plane started and found {', '.join(what)} stopped"
    s.add(JobEvent(job_id=job.id, event="pgaas_startup", status="queued", message=f"{found}: starting them"))
    audit.record(s, STARTUP_ACTOR, "instance.start", "instance", inst.name, detail=f"job {job.id}: {found}")
    inst.status, inst.status_reason = "starting", f"{found}; job {job.id} starts them"
    return job


def start_repo(session, enabled: bool) -> Job | None:
    """With backups on and a repository configured before: one backup_repo job (none when one is already active),
    so that archiving and backups work again after this machine restarted."""
    if not enabled:
        return None
    with session() as s:
        if s.get(BackupRepo, 1) is None:
            return None
        job = backups.request_repo(s, STARTUP_ACTOR.username)
        if job is not None:
            audit.record(s, STARTUP_ACTOR, "backup.repo_start", "backup_repo", backups.REPO_CN,
                         detail=f"job {job.id}: the control plane started; the repository's container is started "
                                "if it stopped")
        return job

