"""Metadata: SQLAlchemy 2 models. Schema changes go through Alembic (store/migrations)."""
from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import (JSON, BigInteger, Boolean, Column, DateTime, Float, ForeignKey, Index, Integer, String, Table,
                        Text, UniqueConstraint, text)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def aware(dt: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; everything stored is UTC."""
    return dt.replace(tzinfo=timezone.utc) if dt is not None and dt.tzinfo is None else dt


class Base(DeclarativeBase):
    type_annotation_map = {datetime: DateTime(timezone=True), dict: JSON}


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(256))
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    # The website's sessions name it: bumping it (a password change) ends every session of this user.
    session_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Capacity (services/capacity.py): total MB of quota over their databases, and how many databases they may
    # own. None: the configured default (DEFAULT_STORAGE_ALLOWANCE_MB, DEFAULT_MAX_DATABASES; admins: no limit).
    storage_allowance_mb: Mapped[int | None] = mapped_column(Integer, nullable=True)
    max_databases: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    tokens: Mapped[list[ApiToken]] = relationship(back_populates="user", cascade="all, delete-orphan")


class ApiToken(Base):
    __tablename__ = "api_tokens"
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(nullable=True)
    # read: GET only; write: everything its user may do
    scope: Mapped[str] = mapped_column(String(8), default="write", server_default="write")
    expires_at: Mapped[datetime] = mapped_column()
    user: Mapped[User] = relationship(back_populates="tokens")


# Who may see an instance restricted to named users (Instance.access_restricted); admins see every instance.
instance_access = Table(
    "instance_access", Base.metadata,
    Column("instance_id", ForeignKey("instances.id", ondelete="CASCADE"), primary_key=True),
    Column("user_id", ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True),
)


class Instance(Base):
    __tablename__ = "instances"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(40), unique=True)
    # creating | starting | restoring | available | failed | deleting   (degraded is computed live from Patroni)
    status: Mapped[str] = mapped_column(String(16))
    status_reason: Mapped[str] = mapped_column(Text, default="")
    provider: Mapped[str] = mapped_column(String(32))
    synchronous: Mapped[bool] = mapped_column(Boolean, default=False)
    replicas: Mapped[int] = mapped_column(Integer, default=1)
    storage_gb: Mapped[int | None] = mapped_column(Integer, nullable=True)
    cpus: Mapped[float | None] = mapped_column(Float, nullable=True)
    memory_mb: Mapped[int | None] = mapped_column(Integer, nullable=True)
    admin_user: Mapped[str] = mapped_column(String(64))
    # The database the admin role owns, created with the instance; the admin URIs point at it ("postgres" for
    # instances made before it existed).
    admin_database: Mapped[str] = mapped_column(String(63), default="app", server_default="postgres")
    # Fernet token of a JSON object: superuser, replication, admin and Patroni REST passwords.
    secrets_enc: Mapped[str] = mapped_column(Text)
    meta: Mapped[dict] = mapped_column(JSON, default=dict)
    created_by: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    # False: open to every user; True: to the users in allowed_users only (and admins)
    access_restricted: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    allowed_users: Mapped[list[User]] = relationship(secondary=instance_access, order_by="User.username")
    members: Mapped[list[Member]] = relationship(
        back_populates="instance", cascade="all, delete-orphan", order_by="Member.ordinal"
    )


class Member(Base):
    __tablename__ = "members"
    __table_args__ = (
        UniqueConstraint("host", "pg_port", name="uq_members_host_pg_port"),
        UniqueConstraint("host", "api_port", name="uq_members_host_api_port"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    instance_id: Mapped[int] = mapped_column(ForeignKey("instances.id", ondelete="CASCADE"))
    ordinal: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(64))
    host: Mapped[str] = mapped_column(String(255))
    address: Mapped[str] = mapped_column(String(255))
    pg_port: Mapped[int] = mapped_column(Integer)
    api_port: Mapped[int] = mapped_column(Integer)
    # The member's pgBackRest TLS server (backups, services/backups.py); null: the instance has no backups.
    backup_port: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # Since when the worker has seen this standby lost (not running or streaming); null while it is healthy.
    lost_since: Mapped[datetime | None] = mapped_column(nullable=True)
    instance: Mapped[Instance] = relationship(back_populates="members")


# The job status vocabulary (AWX's, plus error for our own faults), written once: a job is active while queued
# or running (at most one active job per instance, the index below), finished in any other status.
JOB_STATUSES = ("queued", "running", "succeeded", "failed", "canceled", "error")
ACTIVE_JOB_STATES = ("queued", "running")
FINISHED_JOB_STATES = ("succeeded", "failed", "canceled", "error")
RETRYABLE_JOB_STATES = ("failed", "canceled", "error")
_ACTIVE_SQL = f"status IN ({', '.join(repr(x) for x in ACTIVE_JOB_STATES)})"


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (
        # The lock that keeps two jobs off one instance: at most one queued or running job per instance name.
        Index(
            "uq_jobs_one_active_per_instance",
            "instance_name",
            unique=True,
            sqlite_where=text(_ACTIVE_SQL),
            postgresql_where=text(_ACTIVE_SQL),
        ),
        Index("ix_jobs_status", "status"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    # queued | running | succeeded | failed | canceled | error
    status: Mapped[str] = mapped_column(String(16), default="queued")
    instance_name: Mapped[str | None] = mapped_column(String(40), nullable=True)
    params: Mapped[dict] = mapped_column(JSON, default=dict)
    result: Mapped[dict] = mapped_column(JSON, default=dict)
    error: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[str] = mapped_column(String(64), default="")
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    worker_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    heartbeat_at: Mapped[datetime | None] = mapped_column(nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(nullable=True)
    # When the retention (JOB_RETENTION_DAYS) removed this finished job's events and artifact directory; the row
    # itself stays, the history of what happened.
    events_pruned_at: Mapped[datetime | None] = mapped_column(nullable=True)
    # Each playbook run of the job as the worker started it, for an operator's replay (services/replay.py): the
    # playbook, its variables (never a secret) and the names of its secrets. NULL before migration 0013.
    runs: Mapped[list | None] = mapped_column(JSON, nullable=True, default=list)
    events: Mapped[list[JobEvent]] = relationship(
        back_populates="job", cascade="all, delete-orphan", order_by="JobEvent.id"
    )


class JobEvent(Base):
    __tablename__ = "job_events"
    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    event: Mapped[str] = mapped_column(String(64))
    task: Mapped[str] = mapped_column(String(255), default="")
    host: Mapped[str] = mapped_column(String(255), default="")
    status: Mapped[str] = mapped_column(String(16), default="")
    duration: Mapped[float | None] = mapped_column(Float, nullable=True)
    message: Mapped[str] = mapped_column(Text, default="")
    job: Mapped[Job] = relationship(back_populates="events")


class PeriodicClaim(Base):
    """A worker's periodic task (metrics sampling, quota check, ...): when it is next due for the whole control
    plane, and who last claimed it. The claim is a conditional UPDATE (next_due_at passed -> now + interval) that one
    worker wins; the row is inserted on first use, the primary key settling a race between two first claims."""

    __tablename__ = "periodic_claims"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    next_due_at: Mapped[datetime] = mapped_column()
    holder: Mapped[str] = mapped_column(String(128))  # the worker id of the last winner
    claimed_at: Mapped[datetime] = mapped_column()


class Database(Base):
    """A tenant database on an instance: its owner (a pgaas user) and its login role."""

    __tablename__ = "databases"
    __table_args__ = (UniqueConstraint("instance_id", "name", name="uq_databases_instance_name"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    instance_id: Mapped[int] = mapped_column(ForeignKey("instances.id", ondelete="RESTRICT"), index=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"), index=True)
    name: Mapped[str] = mapped_column(String(63))
    role_name: Mapped[str] = mapped_column(String(63))
    quota_mb: Mapped[int | None] = mapped_column(Integer, nullable=True)
    connection_limit: Mapped[int | None] = mapped_column(Integer, nullable=True)
    parameters: Mapped[dict] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16), default="ok")  # ok | over_quota | locked
    # While over its quota: the least size seen since it became read-only; growing past it means the tenant
    # writes anyway, and the database is locked (services/databases.py, enforce_quotas).
    quota_baseline_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    instance: Mapped[Instance] = relationship()
    owner: Mapped[User] = relationship()


class AuditEvent(Base):
    """Who did what to which object, when, from where, and how it ended."""

    __tablename__ = "audit_events"
    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    object_type: Mapped[str] = mapped_column(String(32))
    object_name: Mapped[str] = mapped_column(String(255))
    remote_addr: Mapped[str] = mapped_column(String(64), default="")
    outcome: Mapped[str] = mapped_column(String(16), default="ok")  # ok | failed | denied
    detail: Mapped[str] = mapped_column(Text, default="")


class DatabaseDump(Base):
    """The final dump (pg_dump custom format) kept when a database is deleted, for a grace period."""

    __tablename__ = "database_dumps"
    id: Mapped[int] = mapped_column(primary_key=True)
    instance_name: Mapped[str] = mapped_column(String(40), index=True)
    database_name: Mapped[str] = mapped_column(String(63))
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    path: Mapped[str] = mapped_column(Text)
    size_bytes: Mapped[int] = mapped_column(Integer, default=0)
    settings: Mapped[dict] = mapped_column(JSON, default=dict)  # quota_mb, connection_limit, parameters
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()
    restored_at: Mapped[datetime | None] = mapped_column(nullable=True)


class DatabaseSample(Base):
    """One sampling of a tenant database: counters as PostgreSQL reports them (rates are computed on read).
    resolution 0 = raw sample, 300 = a 5-minute roll-up (counters: the last value; gauges: the mean, *_max)."""

    __tablename__ = "database_samples"
    __table_args__ = (Index("ix_database_samples_key", "instance_name", "database_name", "resolution", "at"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column()
    resolution: Mapped[int] = mapped_column(Integer, default=0)
    instance_name: Mapped[str] = mapped_column(String(40))
    database_name: Mapped[str] = mapped_column(String(63))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    numbackends: Mapped[int] = mapped_column(BigInteger)
    numbackends_max: Mapped[int] = mapped_column(BigInteger)
    xact_commit: Mapped[int] = mapped_column(BigInteger)
    xact_rollback: Mapped[int] = mapped_column(BigInteger)
    blks_hit: Mapped[int] = mapped_column(BigInteger)
    blks_read: Mapped[int] = mapped_column(BigInteger)
    tup_written: Mapped[int] = mapped_column(BigInteger)
    deadlocks: Mapped[int] = mapped_column(BigInteger)
    temp_bytes: Mapped[int] = mapped_column(BigInteger)
    quota_mb: Mapped[int | None] = mapped_column(Integer, nullable=True)


class InstanceSample(Base):
    """One sampling of an instance (measured on its primary) and its containers."""

    __tablename__ = "instance_samples"
    __table_args__ = (Index("ix_instance_samples_key", "instance_name", "resolution", "at"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column()
    resolution: Mapped[int] = mapped_column(Integer, default=0)
    instance_name: Mapped[str] = mapped_column(String(40))
    healthy: Mapped[bool] = mapped_column(Boolean, default=True)
    connections: Mapped[int] = mapped_column(BigInteger, default=0)
    max_connections: Mapped[int] = mapped_column(BigInteger, default=0)
    wal_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    timeline: Mapped[int | None] = mapped_column(Integer, nullable=True)
    max_lag_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    max_lag_seconds: Mapped[float | None] = mapped_column(Float, nullable=True)
    # per member: role, state, lag; per container: cpu_percent, memory_bytes, volume_bytes
    detail: Mapped[dict] = mapped_column(JSON, default=dict)


class InstanceState(Base):
    """The newest live state of an instance as Patroni told it, which the views read (services/livestate.py): the
    worker keeps it fresh, a view marks it watched."""

    __tablename__ = "instance_states"
    instance_name: Mapped[str] = mapped_column(String(40), primary_key=True)
    state: Mapped[dict] = mapped_column(JSON, default=dict)
    sampled_at: Mapped[datetime] = mapped_column()
    watched_at: Mapped[datetime | None] = mapped_column(nullable=True)
    # a job ended on the instance: until then, views ask Patroni (it settles in the seconds after a job)
    live_until: Mapped[datetime | None] = mapped_column(nullable=True)


class PrimaryChange(Base):
    """A change of primary: when, from which member to which, why (switchover, failover, automatic), the new
    timeline and the WAL position of the switch (Patroni's /history), and how far behind the new primary was."""

    __tablename__ = "primary_changes"
    __table_args__ = (UniqueConstraint("instance_id", "timeline", name="uq_primary_changes_instance_timeline"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    instance_id: Mapped[int] = mapped_column(ForeignKey("instances.id", ondelete="CASCADE"), index=True)
    instance_name: Mapped[str] = mapped_column(String(40))
    at: Mapped[datetime] = mapped_column()
    from_member: Mapped[str | None] = mapped_column(String(64), nullable=True)
    to_member: Mapped[str] = mapped_column(String(64))
    cause: Mapped[str] = mapped_column(String(16))  # switchover | failover | automatic
    timeline: Mapped[int] = mapped_column(Integer)   # the new primary's timeline
    switch_lsn: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    lag_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"), nullable=True)
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)


class AlertState(Base):
    """An alert as the workers' notifiers last saw it: firing (resolved_at null) or resolved. One row per alert id;
    the conditional insert (start) or update (end) is the claim, so one notifier announces each change."""

    __tablename__ = "alert_states"
    id: Mapped[str] = mapped_column(String(255), primary_key=True)  # kind/instance[/subject]
    kind: Mapped[str] = mapped_column(String(32))
    instance_name: Mapped[str] = mapped_column(String(40), index=True)
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    severity: Mapped[str] = mapped_column(String(16))
    alert: Mapped[dict] = mapped_column(JSON, default=dict)  # the alert as GET /api/v1/alerts shows it
    started_at: Mapped[datetime] = mapped_column()
    last_seen_at: Mapped[datetime] = mapped_column()
    resolved_at: Mapped[datetime | None] = mapped_column(nullable=True, index=True)


class Host(Base):
    """A machine the ssh provider may place members on (registered through the API; hosts listed in the
    configuration are not stored). The SSH key is a path the control plane reads, or a key stored encrypted."""
    __tablename__ = "hosts"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    address: Mapped[str] = mapped_column(String(255))
    ssh_user: Mapped[str] = mapped_column(String(32))
    ssh_port: Mapped[int] = mapped_column(Integer, default=22)
    key_path: Mapped[str | None] = mapped_column(Text, nullable=True)
    key_enc: Mapped[str | None] = mapped_column(Text, nullable=True)
    labels: Mapped[dict] = mapped_column(JSON, default=dict)
    capacity: Mapped[int] = mapped_column(Integer, default=4)  # members it may run
    created_by: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class RateLimit(Base):
    """A fixed-window rate limit counter (webapp/store/ratelimit.py): shared by every process on this store."""

    __tablename__ = "rate_limits"
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    count: Mapped[int] = mapped_column(Integer)
    expires_at: Mapped[float] = mapped_column(Float, index=True)  # seconds since the epoch


class BackupStanza(Base):
    """An instance's pgBackRest stanza (<name>-<id>) in the control plane's repository: its policy, the archiver's
    last state, and whether the instance is gone (deleted, restorable: the stanza and its backups stay)."""

    __tablename__ = "backup_stanzas"
    stanza: Mapped[str] = mapped_column(String(64), primary_key=True)
    instance_id: Mapped[int | None] = mapped_column(ForeignKey("instances.id", ondelete="SET NULL"), nullable=True,
                                                    index=True)
    instance_name: Mapped[str] = mapped_column(String(40), index=True)
    full_every_days: Mapped[int] = mapped_column(Integer, default=7)
    diff_every_days: Mapped[int] = mapped_column(Integer, default=1)
    retention_type: Mapped[str] = mapped_column(String(8), default="count")  # count | time
    retention_full: Mapped[int] = mapped_column(Integer, default=2)           # fulls kept, or days (time)
    last_archived_wal: Mapped[str | None] = mapped_column(String(64), nullable=True)
    last_archived_time: Mapped[datetime | None] = mapped_column(nullable=True)
    archive_failed_count: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    last_failed_time: Mapped[datetime | None] = mapped_column(nullable=True)
    current_wal: Mapped[str | None] = mapped_column(String(64), nullable=True)  # the primary's, when checked
    archiver_checked_at: Mapped[datetime | None] = mapped_column(nullable=True)
    deleted_at: Mapped[datetime | None] = mapped_column(nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    backups: Mapped[list[Backup]] = relationship(back_populates="stanza_row", cascade="all, delete-orphan",
                                                 order_by="Backup.started_at")


class Backup(Base):
    """A backup in the repository, as the last `pgbackrest info` after a backup job reported it (a cache)."""

    __tablename__ = "backups"
    __table_args__ = (UniqueConstraint("stanza", "label", name="uq_backups_stanza_label"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    stanza: Mapped[str] = mapped_column(ForeignKey("backup_stanzas.stanza", ondelete="CASCADE"), index=True)
    label: Mapped[str] = mapped_column(String(64))
    type: Mapped[str] = mapped_column(String(8))  # full | diff | incr
    started_at: Mapped[datetime] = mapped_column()
    stopped_at: Mapped[datetime] = mapped_column()
    size_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    repo_size_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    wal_start: Mapped[str | None] = mapped_column(String(64), nullable=True)
    wal_stop: Mapped[str | None] = mapped_column(String(64), nullable=True)
    error: Mapped[bool] = mapped_column(Boolean, default=False)
    stanza_row: Mapped[BackupStanza] = relationship(back_populates="backups")


class BackupRepo(Base):
    """The control plane's backup repository (one row, id 1): its secrets sealed with the control plane's key
    (repository cipher pass, backup CA and key, the repository host's certificate), and the clients
    (certificate CN -> stanzas) its last successful configuration run allowed."""

    __tablename__ = "backup_repo"
    id: Mapped[int] = mapped_column(primary_key=True)
    secrets_enc: Mapped[str] = mapped_column(Text)
    applied_clients: Mapped[list | None] = mapped_column(JSON, nullable=True)
    applied_at: Mapped[datetime | None] = mapped_column(nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
