"""What the API answers, one model per shape (webapp/api/serializers.py builds them as dicts; the OpenAPI document
is generated from these, and tests/api/test_openapi.py checks live answers against it)."""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from webapp.schemas import limits as L
from webapp.schemas.requests import InstanceName
from webapp.store.models import JOB_STATUSES

JobStatus = Literal[JOB_STATUSES]  # type: ignore[valid-type]  (the vocabulary of store/models.py)
Stamp = str | None  # ISO 8601


def doc(text: str) -> Any:
    return Field(None, description=text)


class Shape(BaseModel):
    model_config = ConfigDict(populate_by_name=True)


class ErrorDetail(Shape):
    code: str
    message: str
    details: dict[str, Any] | None = doc("e.g. field: the field that was refused")


class Error(Shape):
    error: ErrorDetail


class JobRef(Shape):
    id: int
    kind: str
    status: JobStatus
    url: str


class JobAccepted(Shape):
    job: JobRef


class JobEvent(Shape):
    id: int
    time: str
    event: str
    status: str
    task: str | None = None
    host: str | None = None
    duration: float | None = None
    message: str | None = None


class JobRun(Shape):
    playbook: str
    label: str | None = None
    inventory: str = Field(description="the inventory the command names: the repository's own, or the instance's "
                                       "(GET /instances/NAME/inventory saved as YAML)")
    inventory_is_exported: bool = Field(description="true: the inventory is the instance's export")
    vars_file: str = Field(description="save vars as this file")
    vars: str = Field(description="the run's variables as YAML (strings that could be Jinja are !unsafe), "
                                  "no secret")
    secrets_file: str | None = doc("the run had secrets: the operator's secrets file it reads instead")
    other_secrets: list[str] | None = doc("secrets of the job itself, not in the secrets file (a dump's one-time "
                                          "password): add them to it to replay")
    command: str = Field(description="the equivalent ansible-playbook command line")


class Job(Shape):
    id: int
    kind: str
    status: JobStatus
    instance: str | None
    created_at: str
    started_at: Stamp
    finished_at: Stamp
    error: str | None
    created_by: str | None = None
    cancel_requested: bool | None = None
    result: dict[str, Any] | None = doc("what the job did; a database_dump's: instance, database, size_bytes, "
                                        "expires_at, download (once it succeeded, until expires_at) or removed")
    url: str | None = None
    events_pruned: bool | None = doc("true once the job ended more than JOB_RETENTION_DAYS ago and its events and "
                                     "artifacts were removed (events is then empty); the job itself is kept")
    events_pruned_at: Stamp = None
    events: list[JobEvent] | None = None
    replay: list[JobRun] | None = doc("admins, in a job's own answer: each playbook run of the job as an operator "
                                      "replays it with ansible-playbook (secrets by a file reference, never values)")


class Member(Shape):
    host: str
    port: int
    container: str
    state: str
    name: str | None = None
    address: str | None = None
    timeline: int | None = None
    pending_restart: bool | None = doc("a changed setting waits for a restart")


class Replica(Member):
    lag_bytes: int | None = None
    sync_state: Literal["sync", "async"] | None = None


class InstanceAccess(Shape):
    users: list[str] | None = Field(description="null: every user sees the instance; a list: only these users "
                                                "(and admins); empty: admins only")


class InstanceAccessOf(Shape):
    instance: str
    users: list[str] | None


class InstanceTLS(Shape):
    """the instance's certificates (admins; null: made before TLS, not converged yet); no key is ever shown"""
    active: bool | None = doc("the members serve these certificates")
    not_after: Stamp = doc("when the first member, etcd or control-plane certificate ends; renewed "
                           "TLS_RENEW_DAYS before")
    issued_at: Stamp = None
    ca_not_after: Stamp = None
    ca_fingerprint_sha256: str | None = None
    renewing: bool | None = doc("a renewal is under way")
    ca_cert_url: str | None = None
    sslrootcert: str | None = doc("the file name the URIs give as sslrootcert")


class Instance(Shape):
    name: InstanceName
    status: Literal["creating", "starting", "restoring", "available", "degraded", "failed",
                    "deleting"] = Field(description=(
        "degraded: available, but Patroni reports no running primary or a standby that is not running "
        "(status_reason says which): a failure now could lose the instance; a rebuild (manual, or automatic after "
        "REBUILD_AFTER_SECONDS) brings it back to available; starting: a start job brings its stopped containers "
        "back after a host or control plane restart; restoring: a restore in place runs (its members stop)"))
    primary: Member | None
    replicas: list[Replica]
    state_age_seconds: float | None = doc("how old the view of Patroni above is, in seconds (null: not asked, e.g. "
                                          "the instance is not available): the worker keeps it at most 3 s old while "
                                          "someone views the instance, 15 s otherwise; ?live=true asks Patroni now")
    same_host: bool
    uri: str = Field(description="libpq multi-host URI, target_session_attrs=read-write; no password; "
                                 "sslmode=verify-full and sslrootcert=pgaas-<name>-ca.crt (save GET .../ca.crt under "
                                 "that name in the client's directory, or give its path)")
    readonly_uri: str
    created_at: str
    status_reason: str | None = None
    provider: str | None = None
    synchronous: bool | None = None
    replicas_wanted: int | None = None
    storage_gb: int | None = None
    cpus: float | None = None
    memory_mb: int | None = None
    placement_note: str | None = None
    admin_user: str | None = None
    admin_database: str | None = doc("database owned by admin_user, created with the instance; the URIs point at it")
    metadata: dict[str, Any] | None = doc("admins only: deploy results and host facts")
    updated_at: Stamp = None
    url: str | None = None
    active_job: JobRef | None = None
    settings: dict[str, Any] | None = doc("settings changed through pgaas, as given")
    pending_restart: bool | None = doc("some member waits for a restart (POST .../restart)")
    version: str | None = doc("PostgreSQL's version at the last deploy")
    access: InstanceAccess | None = None
    tls: InstanceTLS | None = None


class InstanceSummary(Shape):
    """an instance as a user who is not an admin sees it"""
    model_config = ConfigDict(extra="forbid")
    name: InstanceName
    status: str
    version: str | None
    url: str
    ca_cert_url: str | None = doc("the instance's CA certificate (PEM), for sslmode=verify-full")


class InstanceCreated(Shape):
    instance: Instance
    job: JobRef
    admin_user: str
    admin_database: str
    admin_password: str = Field(description="shown in this answer only")


class SettingRow(Shape):
    name: str
    setting: str
    context: str
    pending_restart: bool
    unit: str | None = None


class MemberSettings(Shape):
    name: str
    pending_restart: bool
    settings: list[SettingRow]
    role: str | None = None
    state: str | None = None
    error: str | None = None


class InstanceSettings(Shape):
    instance: str
    requested: dict[str, Any] = Field(description="settings changed through pgaas, as given")
    pending_restart: bool
    members: list[MemberSettings]


class PrimaryChange(Shape):
    at: str = Field(description="when the new primary was promoted (Patroni's history)")
    from_: str | None = Field(alias="from")
    to: str
    cause: Literal["switchover", "failover", "automatic"] = Field(description=(
        "switchover or failover: asked through pgaas (a restart's switchover counts as a switchover); automatic: "
        "Patroni on its own"))
    timeline: int = Field(description="the new primary's timeline")
    switch_lsn: int | None = doc("WAL position of the switch")
    lag_bytes: int | None = doc("how far the new primary was behind: before the switch for a job, as last sampled "
                                "for an automatic change")
    reason: str | None = None
    job: str | None = None
    recorded_at: Stamp = None


class Capacity(Shape):
    """A user's allowance, what their databases take of it, and what is left (in GET /users/{username}, PATCH
    /users/{username} and GET /me)"""
    storage_allowance_mb: int | None = Field(description="null: no limit")
    storage_allocated_mb: int = Field(description="their databases' quotas, added up")
    storage_left_mb: int | None = Field(description="what new or larger quotas may still take (null: no limit; 0 "
                                                    "while a database of theirs has no quota)")
    max_databases: int | None = Field(description="null: no limit")
    databases: int
    databases_left: int | None
    storage_allowance_is_default: bool | None = doc("it is the configured default, none is set")
    storage_used_bytes: int | None = doc("their databases' sizes, measured now (null: an instance did not answer)")
    max_databases_is_default: bool | None = None
    databases_without_quota: list[str] | None = doc("instance/name of each")


class User(Shape):
    username: str
    is_admin: bool
    created_at: str
    storage_allowance_mb: int | None = doc("total MB of quota over their databases (null: no limit); the set value "
                                           "or the configured default")
    max_databases: int | None = doc("databases they may own (null: no limit)")
    capacity: Capacity | None = None


class UserOf(Shape):
    user: User


class Token(Shape):
    id: int
    prefix: str
    scope: Literal[L.TOKEN_SCOPES] = Field(  # type: ignore[valid-type]
        description="read: GET only; write: all its user may do")
    expires_at: str
    revoked: bool
    expired: bool
    name: str | None = None
    created_at: Stamp = None
    last_used_at: Stamp = None


class TokenCreated(Token):
    token: str = Field(description="shown in this answer only")
    username: str
    is_admin: bool


class Database(Shape):
    name: str
    instance: str
    owner: str
    role: str
    uri: str
    readonly_uri: str
    quota_mb: int | None
    connection_limit: int | None
    parameters: dict[str, Any]
    status: Literal["ok", "over_quota", "locked"] = Field(description=(
        "over_quota: read-only; locked: written past its quota anyway, its role may not log in until it is within "
        "its quota again"))
    created_at: str
    ca_cert_url: str | None = doc("the instance's CA certificate (PEM): save it as the sslrootcert the URIs name "
                                  "(sslmode=verify-full)")
    size_bytes: int | None = None
    connections: int | None = None
    password: str | None = doc("only in the create answer")
    url: str | None = None


class DatabaseOf(Shape):
    database: Database


class DatabaseRestore(Shape):
    job: JobRef
    database: Database | None = doc("a deleted database's restore: created again, with its new password")


class DatabasePasswordSet(Shape):
    database: str
    instance: str
    role: str
    password: str = Field(description="shown in this answer only")
    uri: str


class AuditEvent(Shape):
    at: str
    actor: str
    action: str
    object: str
    outcome: Literal["ok", "failed", "denied"]
    id: int | None = None
    object_type: str | None = None
    remote_addr: str | None = None
    detail: str | None = None


class Alert(Shape):
    id: str
    kind: Literal["quota", "replication_lag", "degraded", "volume", "backup_age", "archiving"]
    severity: Literal["warning", "critical"]
    instance: str
    message: str
    at: str
    database: str | None = None
    member: str | None = None


class HostKeyPin(Shape):
    type: str
    sha256: str


class Host(Shape):
    """an SSH host; a stored private key is never returned (key.type 'stored')"""
    name: str
    address: str
    ssh_user: str
    ssh_port: int
    key: dict[str, str] = Field(description="type: path, stored or none; path: the key file's path")
    host_keys: list[HostKeyPin]
    labels: dict[str, str]
    capacity: int
    source: Literal["api", "config"]
    used: int | None = None
    free: int | None = None
    instances: list[Any] | None = None
    etcd_only: list[Any] | None = None


class Metrics(Shape):
    instance: str
    from_: str = Field(alias="from")
    to: str
    points: list[dict[str, Any]]
    database: str | None = None


class Report(Shape):
    kind: str
    instance: str
    from_: str = Field(alias="from")
    to: str
    summary: dict[str, Any]
    top_statements: list[dict[str, Any]] | None = doc("a database's report: its top statements when it was made "
                                                      "(null: the instance did not answer)")
    points: list[dict[str, Any]]


class Usage(Shape):
    instances: list[dict[str, Any]]
    databases: list[dict[str, Any]]


class InstanceAdopted(Shape):
    instance: Instance
    job: JobRef


class InstanceInventory(Shape):
    instance: str
    inventory: dict[str, Any] = Field(description="an Ansible inventory (YAML shape, as an object): the instance's "
                                                  "hosts, and its vars under all.vars")
    vars: dict[str, Any] = Field(description="the same vars, as the operator's vars file (the playbooks' "
                                             "extravars)")
    secrets_file: str = Field(description="where the operator keeps the secrets: beside the inventory")
    secrets: dict[str, Any] | None = doc("only with ?secrets=true (audited): the secrets file's content; "
                                         "pgaas_tls_client is a certificate issued for this answer, never the "
                                         "control plane's own")

