"""Instances: a Patroni-managed primary/standby pair (plus an etcd member), deployed by jobs."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from webapp.providers import NoCapacity
from webapp.schemas import limits as L
from webapp.services import Conflict, Invalid, NotFound, check_db_name, check_int, check_name, check_number
from webapp.services import audit, certificates, patroni
from webapp.services import jobs as jobsvc
from webapp.services.crypto import SecretBox, generate_password
from webapp.store.models import Instance, Job, Member, utcnow

ADMIN_USER = "dbadmin"
ADMIN_DATABASE = L.ADMIN_DATABASE_DEFAULT  # the admin role's own database, unless the create names another
_PASSWORD_FORBIDDEN = set("'\"\\`$")


# The jobs that make or remove an instance: it is failed when one of them fails or is canceled (retry or delete).
LIFECYCLE_KINDS = ("instance_create", "instance_delete", "instance_adopt")


# Patroni's maximum_lag_on_failover as roles/postgres_node sets it (bytes): a standby further behind is not promoted.
MAXIMUM_LAG_ON_FAILOVER = 1048576


@dataclass
class MemberState:
    name: str
    host: str
    address: str
    port: int
    container: str
    role: str = "unknown"          # primary | replica | unknown
    state: str = "unknown"         # Patroni's state: running, streaming, starting, stopped, ...
    lag_bytes: int | None = None
    sync_state: str | None = None  # sync | async (replicas)
    timeline: int | None = None
    pending_restart: bool = False  # Patroni: a changed setting waits for a restart of this member


@dataclass
class ClusterState:
    reachable: bool
    primary: MemberState | None = None
    replicas: list[MemberState] = field(default_factory=list)
    healthy: bool = False
    problem: str = ""


# -- validation -----------------------------------------------------------------------------------------------
def check_password(pw, name="admin_password") -> str:
    if not isinstance(pw, str) or not L.ADMIN_PASSWORD_MIN <= len(pw) <= L.ADMIN_PASSWORD_MAX:
        raise Invalid(f"{name} must be a string of {L.ADMIN_PASSWORD_MIN} to {L.ADMIN_PASSWORD_MAX} characters",
                      field=name)
    if any(c in _PASSWORD_FORBIDDEN or not c.isprintable() or c.isspace() for c in pw):
        raise Invalid(f"{name} may not contain quotes, backslashes, backticks, '$', spaces or control characters",
                      field=name)
    return pw


# -- queries --------------------------------------------------------------------------------------------------
def get(s: Session, name: str) -> Instance:
    inst = s.scalar(select(Instance).where(Instance.name == name)) if isinstance(name, str) else None
    if inst is None:
        raise NotFound(f"no instance {name!r}")
    return inst


def list_all(s: Session) -> list[Instance]:
    return list(s.scalars(select(Instance).order_by(Instance.name)))


def same_host(inst: Instance) -> bool:
    hosts = [m.host for m in inst.members]
    return len(set(hosts)) < len(hosts)


def uris(inst: Instance) -> tuple[str, str]:
    """libpq multi-host URIs: read-write follows the primary through a failover; read-only prefers standbys.
    With TLS they verify the server against the instance's CA, saved as certificates.ca_filename(inst)."""
    hosts = ",".join(f"{m.address}:{m.pg_port}" for m in inst.members)
    base = f"postgresql://{inst.admin_user}@{hosts}/{inst.admin_database}"
    tls = f"&{certificates.uri_params(inst)}" if certificates.ca_cert(inst) else ""
    return f"{base}?target_session_attrs=read-write{tls}", f"{base}?target_session_attrs=read-only{tls}"


# -- changes --------------------------------------------------------------------------------------------------
def create(s: Session, provider, box: SecretBox, *, actor: audit.Actor, name, synchronous=False, replicas=None,
           storage_gb=None, cpus=None, memory_mb=None, admin_password=None,
           admin_database=None, cert_days: int = certificates.CERT_DAYS) -> tuple[Instance, Job, str]:
    """Place the members, seal the generated secrets, queue the deploy; audited as the actor's."""
    check_name(name)
    admin_database = check_db_name(ADMIN_DATABASE if admin_database is None else admin_database, "admin_database")
    if not isinstance(synchronous, bool):
        raise Invalid("synchronous must be true or false", field="synchronous")
    replicas = check_int(replicas, "replicas", L.REPLICAS_MIN, L.REPLICAS_MAX, default=L.REPLICAS_DEFAULT)
    storage_gb = check_int(storage_gb, "storage_gb", L.STORAGE_GB_MIN, L.STORAGE_GB_MAX)
    memory_mb = check_int(memory_mb, "memory_mb", L.MEMORY_MB_MIN, L.MEMORY_MB_MAX)
    cpus = check_number(cpus, "cpus", L.CPUS_MIN, L.CPUS_MAX)
    admin_password = generate_password(24) if admin_password is None else check_password(admin_password)
    existing = s.scalar(select(Instance).where(Instance.name == name))
    if existing is not None:
        hint = " (it failed: retry or delete it)" if existing.status == "failed" else ""
        raise Conflict(f"instance {name!r} already exists{hint}")
    if jobsvc.active_job(s, name):
        raise Conflict(f"instance {name!r} is still being deleted")
    used = used_ports(s)
    try:
        placements = provider.place(name, 1 + replicas, used)
        etcd = provider.etcd_members(name, placements, used)
    except NoCapacity as exc:
        raise Conflict(str(exc)) from None
    secrets = {
        "pgaas_superuser_password": generate_password(32),
        "pgaas_replication_password": generate_password(32),
        "pgaas_restapi_password": generate_password(32),
        "pgaas_admin_password": admin_password,
    }
    inst = Instance(name=name, status="creating", provider=provider.name, synchronous=synchronous,
                    replicas=replicas, storage_gb=storage_gb, cpus=cpus, memory_mb=memory_mb,
                    admin_user=ADMIN_USER, admin_database=admin_database, secrets_enc=box.seal(secrets),
                    meta={"etcd_members": etcd} if etcd else {}, created_by=actor.username)
    inst.members = [Member(ordinal=i, name=p.name, host=p.host, address=p.address, pg_port=p.pg_port,
                           api_port=p.api_port) for i, p in enumerate(placements)]
    certificates.ensure(inst, box, cert_days)
    s.add(inst)
    s.flush()
    job = jobsvc.enqueue(s, "instance_create", name, actor.username)
    audit.record(s, actor, "instance.create", "instance", inst.name, detail=f"job {job.id}")
    return inst, job, admin_password


def retry(s: Session, name: str, actor: audit.Actor, record: bool = True) -> Job:
    """Run the failed create or delete again. record=False: the caller audits it (a job's retry)."""
    inst = get(s, name)
    if inst.status != "failed":
        raise Conflict(f"instance {name!r} is {inst.status}; only a failed instance can be retried")
    failed = inst.meta.get("failed_job_kind")
    kind = failed if failed in ("instance_delete", "instance_adopt") else "instance_create"
    job = jobsvc.enqueue(s, kind, name, actor.username)
    inst.status, inst.status_reason = ("deleting" if kind == "instance_delete" else "creating"), ""
    if record:
        audit.record(s, actor, "instance.retry", "instance", name, detail=f"job {job.id}")
    return job


def delete(s: Session, name: str, actor: audit.Actor, force: bool = False) -> Job:
    """Deleting an instance that holds tenant databases needs force: no user data goes without saying so."""
    from webapp.store.models import Database

    inst = get(s, name)
    count = s.scalar(select(func.count()).select_from(Database).where(Database.instance_id == inst.id))
    if count and not force:
        raise Conflict(f"instance {name!r} holds {count} tenant database(s); delete them first, or pass "
                       "force=true to delete them with the instance", databases=count)
    job = jobsvc.enqueue(s, "instance_delete", name, actor.username, params={"force": bool(force)})
    inst.status, inst.status_reason = "deleting", ""
    audit.record(s, actor, "instance.delete", "instance", name, detail=f"job {job.id}, force={bool(force)}")
    return job


# -- live state from Patroni ----------------------------------------------------------------------------------
def live_state(inst: Instance, timeout: float = 1.0, tls=None) -> ClusterState:
    """tls: the app's certificates.ClientTLS, else the one registered for the instance's key."""
    data = patroni.first_answer(inst, "/cluster", timeout, tls)
    by_name = {m.name: m for m in inst.members}
    if data is None:
        return ClusterState(False, problem="no Patroni member answers")
    st = ClusterState(True)
    for pm in data.get("members", []):
        m = by_name.get(pm.get("name"))
        if m is None:
            continue
        ms = MemberState(name=m.name, host=m.host, address=m.address, port=m.pg_port, container=m.name,
                         state=str(pm.get("state", "unknown")), timeline=pm.get("timeline"),
                         pending_restart=bool(pm.get("pending_restart")))
        role = pm.get("role", "")
        if role in ("leader", "master", "primary", "standby_leader"):
            ms.role = "primary"
            st.primary = ms
        else:
            ms.role = "replica"
            lag = pm.get("lag")
            ms.lag_bytes = lag if isinstance(lag, int) else None
            ms.sync_state = "sync" if role == "sync_standby" else "async"
            st.replicas.append(ms)
    seen = {ms.name for ms in st.replicas} | ({st.primary.name} if st.primary else set())
    for m in inst.members:
        if m.name not in seen:
            st.replicas.append(MemberState(name=m.name, host=m.host, address=m.address, port=m.pg_port,
                                           container=m.name, role="replica", state="missing"))
    running = [r for r in st.replicas if r.state in ("running", "streaming")]
    if st.primary is None or st.primary.state != "running":
        st.problem = "no running primary"
        behind = [r for r in st.replicas if (r.lag_bytes or 0) > MAXIMUM_LAG_ON_FAILOVER]
        if behind:  # reported, not silently promoted (Patroni's maximum_lag_on_failover)
            st.problem += "; " + ", ".join(
                f"standby {r.name} is {r.lag_bytes} bytes behind the last primary, over maximum_lag_on_failover "
                f"({MAXIMUM_LAG_ON_FAILOVER}): Patroni will not promote it" for r in behind)
    elif not running:
        st.problem = "no healthy standby"
        if inst.synchronous:
            st.problem += ("; commits are acknowledged without a synchronous standby until one is back (Patroni "
                           "dropped the synchronous requirement)")
    elif len(running) < len(st.replicas):
        st.problem = "a standby is not running"
    st.healthy = not st.problem
    return st


def live_states(instances: list[Instance], timeout: float = 1.0, tls=None) -> dict[str, ClusterState]:
    targets = [i for i in instances if i.status == "available"]
    if not targets:
        return {}
    with ThreadPoolExecutor(max_workers=min(8, len(targets))) as pool:
        return dict(zip([i.name for i in targets], pool.map(lambda i: live_state(i, timeout, tls), targets)))


def effective_status(inst: Instance, st: ClusterState | None) -> str:
    if inst.status == "available" and st is not None and not st.healthy:
        return "degraded"
    return inst.status


# -- what the instance runs where -------------------------------------------------------------------------
def etcd_members(inst: Instance) -> list[dict]:
    """The instance's own etcd cluster ({name, host, address, client_port, peer_port}); [] for one etcd beside
    the first member."""
    return list((inst.meta or {}).get("etcd_members", []))


def deploy_vars(inst: Instance, image: str) -> dict:
    """The extravars contract of the plays that deploy (docs/architecture.md, "Layering rules"), which is also
    the operator's vars file (services/adoption.py)."""
    backup = (inst.meta or {}).get("backup")  # services/backups.py: absent for an instance without backups
    out = {
        "pgaas_instance_name": inst.name,
        "pgaas_synchronous": inst.synchronous,
        "pgaas_admin_user": inst.admin_user,
        "pgaas_admin_database": inst.admin_database,
        "pgaas_members": [{"name": m.name, "host": m.host, "address": m.address, "pg_port": m.pg_port,
                           "api_port": m.api_port, **({"backup_port": m.backup_port} if backup else {})}
                          for m in inst.members],
        "pgaas_etcd_members": etcd_members(inst),
        "pgaas_cpus": inst.cpus,
        "pgaas_memory_mb": inst.memory_mb,
        "pgaas_storage_gb": inst.storage_gb,
        "pgaas_image": image,
    }
    if backup:
        out["pgaas_backup"] = {"enabled": True, "stanza": backup["stanza"], "repo_host": backup["repo_host"],
                               "repo_port": backup["repo_port"]}
    return out


def used_ports(s: Session, exclude: str | None = None) -> set[tuple[str, int]]:
    """(host, port) of every member and etcd member of every instance but `exclude` (two queries)."""
    others = Instance.name != (exclude or "")
    used = {(m.host, p) for m in s.scalars(select(Member).join(Member.instance).where(others))
            for p in (m.pg_port, m.api_port, m.backup_port) if p is not None}
    for inst in s.scalars(select(Instance).where(others)):
        used |= {(e["host"], e[k]) for e in etcd_members(inst) for k in ("client_port", "peer_port")}
    return used


def instance_hosts(inst: Instance) -> list[str]:
    """Every host that runs something of the instance (members and etcd members)."""
    return [m.host for m in inst.members] + [e["host"] for e in etcd_members(inst)]


def on_queued_cancel(s, job: Job) -> None:
    """A job canceled before it started: the instance goes to failed, from where retry or delete works."""
    inst = s.scalar(select(Instance).where(Instance.name == job.instance_name))
    if inst is not None and job.kind in LIFECYCLE_KINDS:  # others leave it available
        inst.status = "failed"
        inst.status_reason = f"job {job.id} ({job.kind}) canceled before it started; retry or delete"
        inst.meta = {**(inst.meta or {}), "failed_job_kind": job.kind}
        inst.updated_at = utcnow()
    elif inst is not None and job.kind == "instance_start":  # it was starting: what runs stays available
        start_ended(inst, job)


def start_ended(inst: Instance, job: Job) -> None:
    """Back to available when the start job after a restart (services/startup.py) ends; the reason stays until the
    pair is whole again."""
    inst.status = "available"
    if job.status == "succeeded":
        inst.status_reason = ""
    else:
        inst.status_reason = (f"start after a host or control plane restart {job.status} (job {job.id}): "
                              f"{job.error or 'no reason given'}; what started runs: retry the job once the host "
                              "answers, or rebuild the member")
