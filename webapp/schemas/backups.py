"""The bodies of the backup routes (issue 15): what they accept and what they answer (one model per shape)."""
from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field

from webapp.schemas.requests import Body, Text
from webapp.schemas.responses import JobRef, Shape, Stamp

BACKUP_TYPES = ("full", "diff", "incr")
RETENTION_TYPES = ("count", "time")


# -- requests ------------------------------------------------------------------------------------------------
class BackupStart(Body):
    MESSAGES = {"type": f"type must be one of {', '.join(BACKUP_TYPES)}"}
    type: Literal[BACKUP_TYPES] = Field("full", description="full (default), diff or incr")  # type: ignore


class BackupPolicyChange(Body):
    """Fields not given stay as they are (the service checks the ranges: 422 naming the field)."""
    MESSAGES = {"retention_type": "retention_type must be count (full backups kept) or time (days kept)",
                "full_every_days": "full_every_days must be a whole number of days",
                "diff_every_days": "diff_every_days must be a whole number of days (0: none)",
                "retention_full": "retention_full must be a whole number"}
    model_config = ConfigDict(json_schema_extra={"minProperties": 1})
    full_every_days: int | None = Field(None, description="a full backup every this many days (1-365)")
    diff_every_days: int | None = Field(None, description="a differential backup every this many days, less than "
                                                          "full_every_days (0: none)")
    retention_type: Literal[RETENTION_TYPES] | None = Field(None, description="count: retention_full is how many "  # type: ignore
                                                                              "full backups are kept; time: days")
    retention_full: int | None = Field(None, description="full backups kept (count, 1-100) or days (time, 1-3650)")


class RestoreInPlace(Body):
    MESSAGES = {"target_time": "target_time must be a date and time in ISO 8601 with its offset, "
                               "e.g. 2026-12-02T06:30:00Z",
                "confirm": "confirm must be the instance's name"}
    MISSING = "confirm is required: the instance's name (a restore in place loses what came after its target)"
    target_time: Text | None = Field(None, description="ISO 8601 with an offset, within the recoverable window; "
                                                       "null or absent: the end of the archive (now)")
    confirm: Text = Field(description="the instance's name: everything committed after target_time is lost")


# -- responses -----------------------------------------------------------------------------------------------
class BackupPolicy(Shape):
    full_every_days: int
    diff_every_days: int
    retention_type: Literal[RETENTION_TYPES]  # type: ignore[valid-type]
    retention_full: int


class WalRange(Shape):
    start: str | None
    stop: str | None


class BackupItem(Shape):
    label: str
    type: str = Field(description="full, diff or incr")
    started_at: Stamp
    stopped_at: Stamp
    size_bytes: int | None = Field(description="the database's size at the backup")
    repo_size_bytes: int | None = Field(description="what the backup takes in the repository (compressed)")
    wal: WalRange
    error: bool = Field(description="pgBackRest found a checksum error in a page")


class Window(Shape):
    from_: str = Field(alias="from", description="the end of the oldest backup")
    to: str = Field(description="the last archived WAL (or the end of the newest backup, if later)")


class Archiver(Shape):
    last_archived_wal: str | None
    last_archived_time: Stamp
    failed_count: int | None
    last_failed_time: Stamp
    current_wal: str | None = Field(description="the primary's current WAL file when last read")
    checked_at: Stamp = Field(description="when pg_stat_archiver was last read (the worker, every "
                                          "BACKUP_SCHEDULE_SECONDS, and each backup job)")


class StanzaBackups(Shape):
    stanza: str
    deleted: bool = Field(description="the instance was deleted; its backups are kept (restorable)")
    deleted_at: Stamp
    backups: list[BackupItem] = Field(description="oldest first")
    window: Window | None = Field(description="the recoverable window; null: no backup yet")
    policy: BackupPolicy
    archiver: Archiver
    next: Literal["full", "diff"] | None = Field(description="the backup the schedule takes next (null: none is "
                                                             "due)")


class BackupList(StanzaBackups):
    instance: str
    previous: list[StanzaBackups] = Field(description="earlier instances of this name, deleted with their backups "
                                                      "kept")


class BackupPolicyOf(Shape):
    instance: str
    policy: BackupPolicy


class RestoreStarted(Shape):
    job: JobRef = Field(description="the job (instance_restore): the restore, a full backup, then each standby "
                                    "rebuilt from it")
    target_time: Stamp = Field(description="the point restored to; null: the end of the archive")
    lost: str = Field(description="what the restore loses")


REQUESTS = [BackupStart, BackupPolicyChange, RestoreInPlace]
RESPONSES = [BackupList, BackupPolicyOf, RestoreStarted]
