"""Instances: a Patroni-managed primary/standby pair (plus an etcd member), deployed by jobs."""
from __future__ import annotations

import json
import math
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from webapp.jobs.runner import Outcome, RunSpec
from webapp.jobs.spec import NotRunnable
from webapp.providers import NoCapacity
from webapp.schemas import limits as L
from webapp.services import Conflict, Invalid, NotFound, check_db_name, check_name
from webapp.services import certificates
from webapp.services import jobs as jobsvc
from webapp.services.crypto import SecretBox, generate_password
from webapp.store.models import Instance, Job, Member, utcnow

ADMIN_USER = "dbadmin"
ADMIN_DATABASE = L.ADMIN_DATABASE_DEFAULT  # the admin role's own database, unless the create names another
FACT_KEYS = ("ansible_hostname", "ansible_distribution", "ansible_distribution_version", "ansible_kernel",
             "ansible_architecture", "ansible_processor_vcpus", "ansible_memtotal_mb")
_PASSWORD_FORBIDDEN = set("'\"\\`$")


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
def _int(value, name, lo, hi, default=None):
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise Invalid(f"{name} must be an integer", field=name)
    if not lo <= value <= hi:
        raise Invalid(f"{name} must be between {lo} and {hi}", field=name)
    return value


def _number(value, name, lo, hi):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise Invalid(f"{name} must be a number", field=name)
    if not lo <= value <= hi:
        raise Invalid(f"{name} must be between {lo} and {hi}", field=name)
    return float(value)


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
def create(s: Session, provider, box: SecretBox, *, name, created_by: str, synchronous=False, replicas=None,
           storage_gb=None, cpus=None, memory_mb=None, admin_password=None,
           admin_database=None, cert_days: int = certificates.CERT_DAYS) -> tuple[Instance, Job, str]:
    check_name(name)
    admin_database = check_db_name(ADMIN_DATABASE if admin_database is None else admin_database, "admin_database")
    if not isinstance(synchronous, bool):
        raise Invalid("synchronous must be true or false", field="synchronous")
    replicas = _int(replicas, "replicas", L.REPLICAS_MIN, L.REPLICAS_MAX, default=L.REPLICAS_DEFAULT)
    storage_gb = _int(storage_gb, "storage_gb", L.STORAGE_GB_MIN, L.STORAGE_GB_MAX)
    memory_mb = _int(memory_mb, "memory_mb", L.MEMORY_MB_MIN, L.MEMORY_MB_MAX)
    cpus = _number(cpus, "cpus", L.CPUS_MIN, L.CPUS_MAX)
    admin_password = generate_password(24) if admin_password is None else check_password(admin_password)
    existing = s.scalar(select(Instance).where(Instance.name == name))
    if existing is not None:
        hint = " (it failed: retry or delete it)" if existing.status == "failed" else ""
        raise Conflict(f"instance {name!r} already exists{hint}")
    if jobsvc.active_job(s, name):
        raise Conflict(f"instance {name!r} is still being deleted")
    used = {(m.host, p) for m in s.scalars(select(Member)) for p in (m.pg_port, m.api_port)}
    try:
        placements = provider.place(name, 1 + replicas, used)
        etcd = provider.etcd_members(name, placements, used) if hasattr(provider, "etcd_members") else []
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
                    meta={"etcd_members": etcd} if etcd else {}, created_by=created_by)
    inst.members = [Member(ordinal=i, name=p.name, host=p.host, address=p.address, pg_port=p.pg_port,
                           api_port=p.api_port) for i, p in enumerate(placements)]
    certificates.ensure(inst, box, cert_days)
    s.add(inst)
    s.flush()
    job = jobsvc.enqueue(s, "instance_create", name, created_by)
    return inst, job, admin_password


def retry(s: Session, name: str, by: str) -> Job:
    inst = get(s, name)
    if inst.status != "failed":
        raise Conflict(f"instance {name!r} is {inst.status}; only a failed instance can be retried")
    kind = "instance_delete" if inst.meta.get("failed_job_kind") == "instance_delete" else "instance_create"
    job = jobsvc.enqueue(s, kind, name, by)
    inst.status, inst.status_reason = ("deleting" if kind == "instance_delete" else "creating"), ""
    return job


def retry_job(s: Session, job: Job, by: str) -> Job:
    """Run a failed or canceled job again. A create or delete goes through the instance's retry (it is failed
    then); any other job (settings, restart, ...) is queued again with the same, already validated, parameters,
    on an instance that is available."""
    from webapp.services import dumps

    jobsvc.check_retryable(s, job)
    if job.kind in dumps.KINDS:
        new = dumps.retry(s, job, by)
    elif job.kind in ("instance_create", "instance_delete"):
        new = retry(s, job.instance_name, by)
    else:
        if job.instance_name:
            inst = get(s, job.instance_name)
            if inst.status != "available":
                raise Conflict(f"instance {inst.name!r} is {inst.status}, not available")
        new = jobsvc.enqueue(s, job.kind, job.instance_name, by, params=dict(job.params or {}))
    return jobsvc.mark_retry(s, new, job)


def delete(s: Session, name: str, by: str, force: bool = False) -> Job:
    """Deleting an instance that holds tenant databases needs force: no user data goes without saying so."""
    from webapp.store.models import Database

    inst = get(s, name)
    count = s.scalar(select(func.count()).select_from(Database).where(Database.instance_id == inst.id))
    if count and not force:
        raise Conflict(f"instance {name!r} holds {count} tenant database(s); delete them first, or pass "
                       "force=true to delete them with the instance", databases=count)
    job = jobsvc.enqueue(s, "instance_delete", name, by, params={"force": bool(force)})
    inst.status, inst.status_reason = "deleting", ""
    return job


# -- live state from Patroni ----------------------------------------------------------------------------------
def patroni_get(member: Member, path: str, timeout: float, ctx=None):
    """GET path of a member's Patroni REST API: https with the control plane's client certificate when the
    instance serves TLS (ctx from certificates.ClientTLS), plain http for an instance from before TLS. None when
    it does not answer."""
    url = f"{'https' if ctx is not None else 'http'}://{member.address}:{member.api_port}{path}"
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=ctx) as r:  # noqa: S310 (our own Patroni)
            return json.load(r)
    except (OSError, ValueError):
        return None


def live_state(inst: Instance, timeout: float = 1.0, tls=None) -> ClusterState:
    """tls: the app's certificates.ClientTLS, else the one registered for the instance's key."""
    ctx = tls.context(inst) if tls is not None else certificates.context_for(inst)
    data = None
    for m in inst.members:
        data = patroni_get(m, "/cluster", timeout, ctx)
        if data is not None:
            break
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


# -- job handlers (called by the worker) ---------------------------------------------------------------------
def _deploy_vars(inst: Instance, image: str) -> dict:
    return {
        "pgaas_instance_name": inst.name,
        "pgaas_synchronous": inst.synchronous,
        "pgaas_admin_user": inst.admin_user,
        "pgaas_admin_database": inst.admin_database,
        "pgaas_members": [{"name": m.name, "host": m.host, "address": m.address, "pg_port": m.pg_port,
                           "api_port": m.api_port} for m in inst.members],
        "pgaas_etcd_members": etcd_members(inst),
        "pgaas_cpus": inst.cpus,
        "pgaas_memory_mb": inst.memory_mb,
        "pgaas_storage_gb": inst.storage_gb,
        "pgaas_image": image,
    }


def etcd_members(inst: Instance) -> list[dict]:
    """The instance's own etcd cluster ({name, host, address, client_port, peer_port}); [] for one etcd beside
    the first member."""
    return list((inst.meta or {}).get("etcd_members", []))


def instance_hosts(inst: Instance) -> list[str]:
    """Every host that runs something of the instance (members and etcd members)."""
    return [m.host for m in inst.members] + [e["host"] for e in etcd_members(inst)]


def _teardown_spec(name: str, hosts: list[str], provider=None, meta: dict | None = None) -> RunSpec:
    if hasattr(provider, "teardown"):  # cloud providers remove what they made, found by its tags
        playbook, extravars = provider.teardown(name, meta or {})
        return RunSpec(playbook, extravars, label=f"Remove the instance's {provider.name} resources")
    return RunSpec("playbooks/instance_teardown.yml",
                   {"pgaas_instance_name": name, "pgaas_hosts": sorted(set(hosts)) or ["localhost"]},
                   label="Remove the instance's containers, volumes and network")


def facts_summary(facts: dict) -> dict:
    return {host: {k.removeprefix("ansible_"): f[k] for k in FACT_KEYS if k in f} for host, f in facts.items()}


class CreateHandler:
    def __init__(self, box: SecretBox, image: str, provider=None):
        self.box, self.image, self.provider = box, image, provider

    def prepare(self, s, job: Job) -> RunSpec:
        inst = get(s, job.instance_name)
        if hasattr(self.provider, "provision_playbook"):  # cloud providers make the hosts first (then: deploy)
            return RunSpec(self.provider.provision_playbook(),
                           self.provider.create_vars(_deploy_vars(inst, self.image), inst.meta),
                           label=f"Provision {self.provider.name} resources (servers, volumes, addresses)")
        return RunSpec("playbooks/instance_deploy.yml", _deploy_vars(inst, self.image),
                       secrets=certificates.playbook_secrets(self.box, inst), label="Deploy etcd and the Patroni pair")

    def then(self, s, job: Job, outcome: Outcome) -> RunSpec | None:
        """After a cloud provider's provisioning run: record the servers' addresses as the members' (and etcd
        members'), issue certificates that name them (verify-full against the URIs), then deploy on them."""
        if not hasattr(self.provider, "provision_playbook"):
            return None
        inst = get(s, job.instance_name)
        self.provider.record(inst, outcome.artifact_data)
        missing = sorted(m.name for m in inst.members if not m.address)
        if missing:
            raise NotRunnable(f"the provisioning reported no address for {', '.join(missing)}")
        certificates.ensure(inst, self.box)  # issued again when the names (addresses) changed
        return RunSpec(self.provider.create_playbook(),
                       self.provider.create_vars(_deploy_vars(inst, self.image), inst.meta),
                       secrets=certificates.playbook_secrets(self.box, inst),
                       label=f"Deploy etcd and the Patroni pair on the {self.provider.name} servers")

    def cleanup(self, s, job: Job, outcome: Outcome) -> RunSpec | None:
        if outcome.status != "canceled":
            return None  # a failed deploy keeps its containers for inspection; a retry converges them
        inst = get(s, job.instance_name)
        return _teardown_spec(inst.name, instance_hosts(inst), self.provider, inst.meta)

    def finish(self, s, job: Job, outcome: Outcome) -> None:
        inst = s.scalar(select(Instance).where(Instance.name == job.instance_name))
        if inst is None:
            return
        if hasattr(self.provider, "record"):  # where the provider put the members (even when a later play failed)
            self.provider.record(inst, outcome.artifact_data)
        meta = dict(inst.meta or {})
        meta["last_job"] = {"id": job.id, "kind": job.kind, "status": job.status,
                            "finished_at": job.finished_at.isoformat() if job.finished_at else None}
        if job.status == "succeeded":
            meta["deploy"] = outcome.artifact_data.get("pgaas_result", {})
            meta["facts"] = facts_summary(outcome.facts)
            meta.pop("failed_job_kind", None)
            inst.status, inst.status_reason = "available", ""
            inst.meta = meta
            certificates.activate(inst)
            meta = dict(inst.meta)
        else:
            meta["failed_job_kind"] = job.kind
            inst.status = "failed"
            if job.status == "canceled":
                inst.status_reason = f"create canceled (job {job.id}); leftovers removed; retry or delete"
            else:
                inst.status_reason = f"create failed (job {job.id}): {job.error}; retry or delete"
        job.result = {"instance": inst.name, "status": inst.status}
        inst.meta = meta

    def lost(self, s, job: Job) -> None:
        inst = s.scalar(select(Instance).where(Instance.name == job.instance_name))
        if inst is not None:
            inst.status = "failed"
            inst.status_reason = f"job {job.id} ended abnormally: {job.error}"
            inst.meta = {**(inst.meta or {}), "failed_job_kind": job.kind}


class DeleteHandler(CreateHandler):
    def prepare(self, s, job: Job) -> RunSpec:
        inst = get(s, job.instance_name)
        return _teardown_spec(inst.name, instance_hosts(inst), self.provider, inst.meta)

    def then(self, s, job: Job, outcome: Outcome) -> RunSpec | None:
        return None  # the teardown is one run

    def cleanup(self, s, job: Job, outcome: Outcome) -> RunSpec | None:
        return None

    def finish(self, s, job: Job, outcome: Outcome) -> None:
        inst = s.scalar(select(Instance).where(Instance.name == job.instance_name))
        if inst is None:
            return
        if job.status == "succeeded":
            from webapp.store.models import Database

            for db in s.scalars(select(Database).where(Database.instance_id == inst.id)):
                s.delete(db)
            s.flush()
            s.delete(inst)
            job.result = {"instance": job.instance_name, "deleted": True}
        else:
            inst.status = "failed"
            inst.status_reason = f"delete {job.status} (job {job.id}): {job.error or 'no reason given'}; " \
                                 "retry the delete"
            inst.meta = {**(inst.meta or {}), "failed_job_kind": job.kind}


def handlers(box: SecretBox, image: str, provider=None) -> dict:
    from webapp.services import failover, settings, startup

    return {"instance_create": CreateHandler(box, image, provider),
            "instance_certificates": certificates.RenewHandler(box, image),
            "instance_delete": DeleteHandler(box, image, provider),
            **settings.handlers(box, provider), **failover.handlers(box, image), **startup.handlers(box, image)}


def on_queued_cancel(s, job: Job) -> None:
    """A job canceled before it started: the instance goes to failed, from where retry or delete works."""
    inst = s.scalar(select(Instance).where(Instance.name == job.instance_name))
    if inst is not None and job.kind in ("instance_create", "instance_delete"):  # others leave it available
        inst.status = "failed"
        inst.status_reason = f"job {job.id} ({job.kind}) canceled before it started; retry or delete"
        inst.meta = {**(inst.meta or {}), "failed_job_kind": job.kind}
        inst.updated_at = utcnow()
    elif inst is not None and job.kind == "instance_start":  # it was starting: what runs stays available
        from webapp.services import startup

        startup.ended(inst, job)
