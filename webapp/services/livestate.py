"""The live state of instances (who is primary, who streams, how far behind) as the views read it: from the
store, kept fresh by the worker, not asked of Patroni on every view (issue 17, item 2).

- One row per instance in `instance_states`: Patroni's view (services/instances.live_state) as JSON, when it was
  taken (`sampled_at`) and when a view last read it (`watched_at`).
- The worker's periodic task `instances.state` (refresh(), every second, once per cluster through periodic_claims)
  probes, in parallel, each available instance whose row is missing, older than WATCHED_AGE while someone looks at
  it (read in the last WATCH_WINDOW seconds), or older than IDLE_AGE otherwise. The metrics sampler records what
  its own probe saw as well (metrics.sample_all).
- read() gives the views each instance's state and its age. A row older than STALE_AGE (no worker runs) or a
  `live` read (`?live=true`, the pages' refresh link) asks Patroni at once and records the answer.
- A job that ends on an instance marks its row (forget()): for LIVE_AFTER_JOB seconds its views ask Patroni, so a
  view after a switchover, a rebuild or a settings change never shows a state from before the job or from the
  moment Patroni was still settling.

Knows nothing of HTTP; the API and the pages print the age beside the state.
"""
from __future__ import annotations

from dataclasses import asdict
from datetime import datetime, timedelta

from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import Session

from webapp.services import instances as isvc
from webapp.services.instances import ClusterState, MemberState
from webapp.store import dialect_insert
from webapp.store.models import Instance, InstanceState, aware, utcnow

WATCHED_AGE = 3.0     # seconds: at most this old while someone is looking
IDLE_AGE = 15.0       # seconds: at most this old otherwise
WATCH_WINDOW = 30.0   # seconds: "someone is looking" = a view read the row this recently
STALE_AGE = 20.0      # seconds: older than this (no worker keeps it), a view asks Patroni itself
LIVE_AFTER_JOB = 10.0  # seconds after a job's end during which views ask Patroni
WATCH_MARK_EVERY = 10.0  # seconds: a view writes watched_at at most this often per instance (< WATCH_WINDOW)


def to_json(st: ClusterState) -> dict:
    return asdict(st)


def from_json(d: dict) -> ClusterState:
    def member(m: dict) -> MemberState:
        return MemberState(**{k: m.get(k) for k in ("name", "host", "address", "port", "container")},
                           role=m.get("role") or "unknown", state=m.get("state") or "unknown",
                           lag_bytes=m.get("lag_bytes"), sync_state=m.get("sync_state"),
                           timeline=m.get("timeline"), pending_restart=bool(m.get("pending_restart")))

    return ClusterState(bool(d.get("reachable")), primary=member(d["primary"]) if d.get("primary") else None,
                        replicas=[member(r) for r in d.get("replicas") or []], healthy=bool(d.get("healthy")),
                        problem=d.get("problem") or "")


def record(s: Session, states: dict[str, ClusterState], now: datetime | None = None) -> None:
    """Store what Patroni said of each instance (name -> state), in the caller's session."""
    now = now or utcnow()
    insert = dialect_insert(s)
    for name, st in states.items():
        body = to_json(st)
        s.execute(insert(InstanceState).values(instance_name=name, state=body, sampled_at=now)
                  .on_conflict_do_update(index_elements=[InstanceState.instance_name],
                                         set_={"state": body, "sampled_at": now}))


def forget(s: Session, name: str, now: datetime | None = None) -> None:
    """A job changed the instance: for the next LIVE_AFTER_JOB seconds its views ask Patroni (which settles in
    those seconds: a new leader, a pending restart), whatever the worker records meanwhile."""
    now = now or utcnow()
    until = now + timedelta(seconds=LIVE_AFTER_JOB)
    long_ago = now - timedelta(days=1)  # a new row: stale, so the worker asks at once
    s.execute(dialect_insert(s)(InstanceState).values(instance_name=name, state={}, sampled_at=long_ago,
                                                      live_until=until)
              .on_conflict_do_update(index_elements=[InstanceState.instance_name], set_={"live_until": until}))


def read(s: Session, insts: list[Instance], timeout: float, live: bool = False,
         now: datetime | None = None) -> dict[str, tuple[ClusterState, float]]:
    """name -> (state, age in seconds) for the available instances of `insts`; marks them watched. Rows that are
    missing or older than STALE_AGE, or all of them when live, are asked of Patroni now (in parallel) and
    recorded."""
    now = now or utcnow()
    targets = [i for i in insts if i.status == "available"]
    if not targets:
        return {}
    names = [i.name for i in targets]
    rows = {r.instance_name: r for r in s.scalars(select(InstanceState).where(
        InstanceState.instance_name.in_(names)))}
    out: dict[str, tuple[ClusterState, float]] = {}
    ask = []
    for inst in targets:
        row = rows.get(inst.name)
        age = (now - aware(row.sampled_at)).total_seconds() if row is not None else None
        settling = row is not None and row.live_until is not None and aware(row.live_until) > now
        if live or age is None or age > STALE_AGE or settling:
            ask.append(inst)
        else:
            out[inst.name] = (from_json(row.state), max(0.0, age))
    if ask:
        fresh = isvc.live_states(ask, timeout)
        record(s, fresh, now)
        out.update({n: (st, 0.0) for n, st in fresh.items()})
    mark_before = now - timedelta(seconds=WATCH_MARK_EVERY)
    s.execute(update(InstanceState).where(InstanceState.instance_name.in_(names))
              .where(or_(InstanceState.watched_at.is_(None), InstanceState.watched_at < mark_before))
              .values(watched_at=now).execution_options(synchronize_session=False))
    return out


def due(s: Session, now: datetime | None = None) -> list[Instance]:
    """The available instances whose state the worker should ask for now."""
    now = now or utcnow()
    insts = list(s.scalars(select(Instance).where(Instance.status == "available")))
    rows = {r.instance_name: r for r in s.scalars(select(InstanceState))}
    out = []
    for inst in insts:
        row = rows.get(inst.name)
        if row is None:
            out.append(inst)
            continue
        age = (now - aware(row.sampled_at)).total_seconds()
        watched = row.watched_at is not None and (now - aware(row.watched_at)).total_seconds() <= WATCH_WINDOW
        if age >= (WATCHED_AGE if watched else IDLE_AGE):
            out.append(inst)
    return out


def refresh(s: Session, timeout: float, now: datetime | None = None) -> dict:
    """The worker's periodic task: ask Patroni of every instance that is due (in parallel), record the answers."""
    s.execute(delete(InstanceState).where(InstanceState.instance_name.not_in(
        select(Instance.name).where(Instance.status == "available"))))  # gone, or not running: asked when back
    insts = due(s, now)
    if not insts:
        return {}
    for inst in insts:
        list(inst.members)  # loaded before the probing threads
    states = isvc.live_states(insts, timeout)
    record(s, states, now)
    return {"probed": sorted(states)}
