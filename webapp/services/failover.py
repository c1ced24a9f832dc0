"""Moving and repairing the primary/standby pair, and the history of primary changes.

Failover itself is Patroni's: the control plane never promotes on its own. It asks Patroni for a switchover or a
forced failover (jobs running playbooks/instance_switchover.yml), rebuilds a lost standby from the current primary
(playbooks/instance_rebuild.yml; by hand or, from the worker's maintenance, once a standby stays lost past
REBUILD_AFTER_SECONDS), and records every change of primary once, keyed by the new timeline: the jobs record theirs
when they end, the worker's sampler finds the others in Patroni's /history (cause "automatic"; a change that falls
inside a switchover, failover or restart job is put down to that job).

Placement of a rebuilt member: a provider that knows other hosts may offer one (`provider.replace(...)`); the local
provider has one host, so the member comes back under the same name and ports on the same host. That keeps the
instance's multi-host URI, the member's row and Patroni's replication slot name unchanged: clients change nothing.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from webapp.services import Conflict, Invalid, ServiceError
from webapp.services import audit, patroni
from webapp.services import instances as isvc
from webapp.services import jobs as jobsvc
from webapp.store.models import (ACTIVE_JOB_STATES, Instance, InstanceSample, Job, Member, PrimaryChange, aware,
                                 utcnow)

log = logging.getLogger(__name__)

# jobs that move the primary, and the cause a change inside one of them is put down to
MOVING_KINDS = {"instance_switchover": "switchover", "instance_failover": "failover",
                "instance_restart": "switchover"}
HEALTHY = ("running", "streaming")
# a member being cloned is not lost: the clone of a large database takes a while
IN_PROGRESS = ("creating replica",)
# a change of primary belongs to the job that ran when Patroni promoted (its clock is the host's: allow a second)
ATTRIBUTION_SLACK = timedelta(seconds=1)


# -- checks shared by the three operations --------------------------------------------------------------------
def _member_name(inst: Instance, name, field: str) -> str:
    if name is None or name == "":
        raise Invalid(f"{field} is required: the name of one of the instance's members", field=field)
    names = [m.name for m in inst.members]
    if not isinstance(name, str) or name not in names:
        raise Invalid(f"{field} {name!r} is not a member of instance {inst.name!r}; its members are "
                      f"{', '.join(names)}", field=field)
    return name


def _live(s: Session, inst: Instance, timeout: float) -> isvc.ClusterState:
    if inst.status != "available":
        raise Conflict(f"instance {inst.name!r} is {inst.status}, not available")
    if busy := jobsvc.active_job(s, inst.name):  # no need to ask Patroni when the answer is 409 anyway
        raise Conflict(f"instance {inst.name!r} is busy with job {busy.id} ({busy.kind}, {busy.status}); "
                       "wait for it or cancel it", job_id=busy.id)
    st = isvc.live_state(inst, timeout)
    if not st.reachable:
        raise Conflict(f"instance {inst.name!r}: no Patroni member answers, so nothing can be moved or rebuilt now")
    return st


def _state_of(st: isvc.ClusterState, name: str) -> str:
    for ms in ([st.primary] if st.primary else []) + st.replicas:
        if ms.name == name:
            return ms.state
    return "missing"


def _primary_running(st: isvc.ClusterState) -> bool:
    return st.primary is not None and st.primary.state == "running"


# -- operations -----------------------------------------------------------------------------------------------
def switchover(s: Session, inst: Instance, actor: audit.Actor, candidate=None, timeout: float = 1.0) -> Job:
    """Queue a switchover from the running primary to the candidate (default: the synchronous standby, else the
    least lagging one). In synchronous mode Patroni only accepts the synchronous standby: its refusal comes back
    as the job's error. Audited."""
    asked = candidate
    if candidate is not None:
        candidate = _member_name(inst, candidate, "candidate")
    st = _live(s, inst, timeout)
    if not _primary_running(st):
        raise Conflict(f"instance {inst.name!r} has no running primary to switch over from ({st.problem}); "
                       "an administrator can force a failover to a named candidate instead")
    if candidate == st.primary.name:
        raise Invalid(f"candidate {candidate!r} is already the primary; name a standby", field="candidate")
    if candidate is not None and _state_of(st, candidate) not in HEALTHY:
        raise Invalid(f"candidate {candidate!r} is not running (Patroni says {_state_of(st, candidate)}); it cannot "
                      "take over", field="candidate")
    if not any(r.state in HEALTHY for r in st.replicas):
        raise Conflict(f"instance {inst.name!r} has no running standby to switch over to")
    job = jobsvc.enqueue(s, "instance_switchover", inst.name, actor.username,
                         params={"action": "switchover", "candidate": candidate, "from": st.primary.name})
    audit.record(s, actor, "instance.switchover", "instance", inst.name,
                 detail=f"job {job.id}, candidate {asked or '(the synchronous or least lagging)'}")
    return job


def failover(s: Session, inst: Instance, actor: audit.Actor, candidate=None, timeout: float = 1.0) -> Job:
    """Queue a failover forced to the candidate, whatever the primary's health (Patroni's /failover); audited."""
    candidate = _member_name(inst, candidate, "candidate")
    st = _live(s, inst, timeout)
    if st.primary is not None and st.primary.name == candidate:
        raise Invalid(f"candidate {candidate!r} is already the primary; name a standby", field="candidate")
    if _state_of(st, candidate) not in HEALTHY:
        raise Invalid(f"candidate {candidate!r} is not running (Patroni says {_state_of(st, candidate)}); it cannot "
                      "be promoted", field="candidate")
    job = jobsvc.enqueue(s, "instance_failover", inst.name, actor.username,
                         params={"action": "failover", "candidate": candidate,
                                 "from": st.primary.name if st.primary else None})
    audit.record(s, actor, "instance.failover", "instance", inst.name, detail=f"job {job.id}, candidate {candidate}")
    return job


def _replacement(provider, inst: Instance, member: Member) -> dict:
    """Where the rebuilt member runs: on another host when the provider has one, else where it was."""
    same = {"name": member.name, "host": member.host, "address": member.address, "pg_port": member.pg_port,
            "api_port": member.api_port}
    from webapp.providers import NoCapacity

    others = {m.host for m in inst.members if m.name != member.name}
    try:
        p = provider.replace(inst.name, member.name, member.host, others)
    except NoCapacity as exc:
        raise Conflict(f"no host can take the rebuilt {member.name}: {exc}") from None
    if p is None:  # the provider offers no other place
        return same
    return {"name": p.name, "host": p.host, "address": p.address, "pg_port": p.pg_port, "api_port": p.api_port}


def rebuild(s: Session, provider, inst: Instance, actor: audit.Actor, member=None, timeout: float = 1.0,
            only_if_lost: bool = False, why: str = "") -> Job:
    """Queue the rebuild of a standby: its leftovers removed, a fresh copy cloned from the current primary.
    Audited; why: the audit detail's reason (the maintenance's automatic rebuild says why it acts)."""
    member = _member_name(inst, member, "member")
    st = _live(s, inst, timeout)
    if st.primary is not None and st.primary.name == member:
        raise Invalid(f"member {member!r} is the current primary: it cannot be rebuilt; switch over first, then "
                      "rebuild it as a standby", field="member")
    if not _primary_running(st):
        raise Conflict(f"instance {inst.name!r} has no running primary to clone {member!r} from ({st.problem})")
    if only_if_lost and _state_of(st, member) in HEALTHY + IN_PROGRESS:
        raise Conflict(f"member {member!r} is {_state_of(st, member)} again; no rebuild needed")
    m = next(m for m in inst.members if m.name == member)
    job = jobsvc.enqueue(s, "instance_rebuild", inst.name, actor.username,
                         params={"member": member, "old_host": m.host, "placement": _replacement(provider, inst, m),
                                 "state": _state_of(st, member), "automatic": only_if_lost})
    audit.record(s, actor, "instance.rebuild", "instance", inst.name,
                 detail=f"job {job.id}: {why}" if why else f"job {job.id}, member {member}")
    return job


# -- history --------------------------------------------------------------------------------------------------
def history(s: Session, inst: Instance, limit: int = 100, offset: int = 0) -> list[PrimaryChange]:
    return list(s.scalars(select(PrimaryChange).where(PrimaryChange.instance_id == inst.id)
                          .order_by(PrimaryChange.timeline.desc()).limit(limit).offset(offset)))


def fetch_history(inst: Instance, timeout: float = 2.0, tls=None) -> list | None:
    """Patroni's /history from the first member that answers: [[timeline, lsn, reason, timestamp, new_leader]]."""
    data = patroni.first_answer(inst, "/history", timeout, tls)
    if data is None:
        return None
    return data if isinstance(data, list) else []


def _parse_time(value) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return aware(datetime.fromisoformat(value.replace("Z", "+00:00")))
    except ValueError:
        return None


def _job_target(j: Job) -> str | None:
    """The member a job meant to promote, when it says: its result's leader, else the candidate it was given."""
    return (j.result or {}).get("leader") or (j.params or {}).get("candidate")


def _moving_job(s: Session, inst: Instance, at: datetime, job: Job | None, new_leader: str | None) -> Job | None:
    """The switchover, failover or restart job of this instance that was running when the primary changed to
    new_leader (a job that meant to promote another member did not make this change)."""
    jobs = [job] if job is not None and job.kind in MOVING_KINDS else []
    jobs += list(s.scalars(select(Job).where(Job.instance_name == inst.name, Job.kind.in_(MOVING_KINDS),
                                             Job.started_at.is_not(None), Job.started_at <= at + ATTRIBUTION_SLACK)
                           .order_by(Job.id.desc()).limit(20)))
    for j in jobs:
        start, end = aware(j.started_at), aware(j.finished_at) or utcnow()
        target = _job_target(j)
        if start is not None and start - ATTRIBUTION_SLACK <= at <= end + ATTRIBUTION_SLACK \
                and (target is None or new_leader is None or target == new_leader):
            return j
    return None


def _sampled_lag(s: Session, inst: Instance, member: str | None, at: datetime) -> int | None:
    """The new primary's lag as the sampler last saw it before the change (automatic changes)."""
    row = s.scalar(select(InstanceSample).where(InstanceSample.instance_name == inst.name,
                                                InstanceSample.resolution == 0, InstanceSample.at <= at)
                   .order_by(InstanceSample.at.desc()).limit(1))
    if row is None or not member:
        return None
    lag = ((row.detail or {}).get("members") or {}).get(member, {}).get("lag_bytes")
    return lag if isinstance(lag, int) else None


def record_history(s: Session, inst: Instance, lines, job: Job | None = None, result: dict | None = None
                   ) -> list[PrimaryChange]:
    """Record each timeline switch of Patroni's history not recorded yet. `job` and `result` are those of the job
    that made the change, when one did (they give the old leader and the candidate's lag before the switch)."""
    result = result or {}
    recorded = {r.timeline: r for r in s.scalars(select(PrimaryChange).where(PrimaryChange.instance_id == inst.id))}
    added = []
    prev_leader = inst.members[0].name if inst.members else None  # the member that bootstrapped the cluster
    for line in sorted((x for x in lines or [] if isinstance(x, list) and len(x) >= 3 and isinstance(x[0], int)),
                       key=lambda x: x[0]):
        old_tl, lsn, reason = line[0], line[1], str(line[2] or "")
        at = _parse_time(line[3]) if len(line) > 3 else None
        new_leader = line[4] if len(line) > 4 and isinstance(line[4], str) else None
        timeline = old_tl + 1
        from_member = recorded[old_tl].to_member if old_tl in recorded else prev_leader
        if timeline in recorded:
            prev_leader = recorded[timeline].to_member
            continue
        at = at or utcnow()
        mover = _moving_job(s, inst, at, job, new_leader or (result.get("leader") if job is not None else None))
        if mover is not None and mover is job and result.get("timeline") == timeline:
            from_member = result.get("old_leader") or from_member
            new_leader = new_leader or result.get("leader")
            lag = result.get("lag_bytes")
        else:
            lag = _sampled_lag(s, inst, new_leader, at)
        row = PrimaryChange(instance_id=inst.id, instance_name=inst.name, at=at, from_member=from_member,
                            to_member=new_leader or "unknown",
                            cause=MOVING_KINDS[mover.kind] if mover is not None else "automatic",
                            timeline=timeline, switch_lsn=lsn if isinstance(lsn, int) else None,
                            lag_bytes=int(lag) if isinstance(lag, (int, float)) or str(lag).isdigit() else None,
                            reason=reason[:500], job_id=mover.id if mover is not None else None)
        try:
            with s.begin_nested():  # another worker may have recorded it a moment ago: keep theirs
                s.add(row)
        except IntegrityError:
            continue
        recorded[timeline] = row
        added.append(row)
        prev_leader = row.to_member
    return added


def _track_lost(inst: Instance, st: isvc.ClusterState, now: datetime) -> None:
    primary = st.primary.name if st.primary else None
    for m in inst.members:
        state = _state_of(st, m.name)
        if m.name == primary or state in HEALTHY + IN_PROGRESS:
            m.lost_since = None
        elif m.lost_since is None:
            m.lost_since = now


def observe(s: Session, inst: Instance, st: isvc.ClusterState, now: datetime | None = None) -> list[PrimaryChange]:
    """Called by the sampler with the /cluster state it read: note lost standbys, and record changes of primary
    that no job recorded (the new leader's timeline is past the last recorded one). Never raises: the sampling
    cycle goes on."""
    try:
        return _observe(s, inst, st, now)
    except Exception:  # noqa: BLE001 - a bug here must not stop the metrics of every instance
        log.exception("failover history of %s: not recorded this cycle", inst.name)
        return []


def _observe(s: Session, inst: Instance, st: isvc.ClusterState, now: datetime | None) -> list[PrimaryChange]:
    if not st.reachable:
        return []  # nothing answers: nothing can be told about the members
    _track_lost(inst, st, now or utcnow())
    if st.healthy and inst.status_reason:  # why a start did not finish (services/startup.py): whole again now
        inst.status_reason = ""
    timeline = st.primary.timeline if st.primary else None
    if not isinstance(timeline, int) or timeline <= 1 or jobsvc.active_job(s, inst.name):
        return []  # a running job records its own change when it ends
    last = s.scalar(select(func.max(PrimaryChange.timeline)).where(PrimaryChange.instance_id == inst.id)) or 1
    if timeline <= last:
        return []
    lines = fetch_history(inst)
    return record_history(s, inst, lines) if lines else []


def auto_rebuild(s: Session, provider, after_seconds: float, timeout: float = 1.0) -> Job | None:
    """Queue the rebuild of a standby lost for longer than after_seconds (0 turns this off): at most one rebuild
    at a time in the whole control plane, never on an instance another job works on; audited."""
    if after_seconds <= 0:
        return None
    if s.scalar(select(Job.id).where(Job.kind == "instance_rebuild", Job.status.in_(ACTIVE_JOB_STATES)).limit(1)):
        return None
    cutoff = utcnow() - timedelta(seconds=after_seconds)
    lost = s.scalars(select(Member).join(Instance).where(Instance.status == "available",
                                                         Member.lost_since.is_not(None), Member.lost_since <= cutoff)
                     .order_by(Member.lost_since))
    for m in list(lost):
        inst = m.instance
        since = aware(m.lost_since)
        try:
            return rebuild(s, provider, inst, audit.MAINTENANCE_ACTOR, m.name, timeout, only_if_lost=True,
                           why=f"automatic, {m.name} lost since {since:%Y-%m-%d %H:%M:%S} UTC "
                               f"(more than {after_seconds:.0f} s)")
        except ServiceError as exc:
            log.info("no automatic rebuild of %s: %s", m.name, exc.message)
    return None
    return None
