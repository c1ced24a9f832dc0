"""Extensions created at import, attached in create_app with init_app. Our own state lives in
app.extensions['pgaas'] (a Services object), never in module globals."""
from __future__ import annotations

from dataclasses import dataclass

from flask import current_app
from flask_login import LoginManager
from flask_wtf import CSRFProtect

from webapp.providers import Provider
from webapp.services.crypto import SecretBox
from webapp.store import Store

csrf = CSRFProtect()
login_manager = LoginManager()


@dataclass
class Services:
    store: Store
    box: SecretBox
    provider: Provider
    config: dict

    def worker_settings(self) -> dict:
        c = self.config
        return dict(
            jobs_dir=c["JOBS_DIR"], project_dir=c["PROJECT_DIR"],
            # a provider with hosts of its own writes each run's inventory; else the static local one
            inventory=self.provider.inventory if self.provider.writes_inventory
            else str(__import__("pathlib").Path(c["PROJECT_DIR"]) / "inventory" / "local" / "hosts.yml"),
            envvars={"CONTAINERS_CONF": c["CONTAINERS_CONF"]},
            heartbeat_seconds=float(c["JOB_HEARTBEAT_SECONDS"]), stale_seconds=float(c["JOB_STALE_SECONDS"]),
            poll_seconds=float(c["WORKER_POLL_SECONDS"]),
        )

    def capacity_defaults(self):
        """The allowance of users who are not administrators, unless one is set for them."""
        from webapp.services.capacity import Defaults

        return Defaults.from_config(self.config)

    def dump_settings(self):
        from webapp.services.databases import DumpSettings

        c = self.config
        return DumpSettings(c["DUMPS_DIR"], float(c["DUMP_GRACE_SECONDS"]), c["PG_CLIENT_BIN"],
                            float(c["DUMP_RETENTION_SECONDS"]))

    def backup_settings(self):
        from webapp.services.backups import BackupSettings

        return BackupSettings.from_config(self.config)

    def maintenance(self) -> list:
        """Periodic work a worker does between jobs: (interval seconds, name, function of a session). Each runs
        once per interval for all the workers on this store, however many: the name is the key of its claim
        (periodic_claims, see webapp/jobs/worker.py)."""
        from webapp.services import certificates, databases, dumps, failover, jobs, livestate, metrics
        from webapp.store import ratelimit

        c = self.config
        retention = metrics.Retention(float(c["METRICS_RAW_SECONDS"]), float(c["METRICS_ROLLUP_SECONDS"]))
        return [(float(c["QUOTA_CHECK_SECONDS"]), "quota check", lambda s: databases.enforce_quotas(s, self.box)),
                (float(c["LIVE_STATE_SECONDS"]), "instance states",
                 lambda s: livestate.refresh(s, float(c["PROBE_TIMEOUT"]))),
                (float(c["SAMPLE_SECONDS"]), "metrics sampling",
                 lambda s: metrics.sample_all(s, self.box, self.provider)),
                (float(c["SAMPLE_SECONDS"]), "alerts",
                 __import__("webapp.services.alerts", fromlist=["Notifier"]).Notifier(c, self.provider)),
                (600.0, "metrics roll-up", lambda s: metrics.rollup_and_prune(s, retention)),
                (60.0, "dump pruning", lambda s: databases.prune_dumps(s) + dumps.prune(s, self.dump_settings())),
                (600.0, "rate limit pruning", ratelimit.prune),
                (3600.0, "job pruning", lambda s: jobs.prune(s, c["JOBS_DIR"], float(c["JOB_RETENTION_DAYS"]))),
                (float(c["SAMPLE_SECONDS"]), "standby rebuild",
                 lambda s: failover.auto_rebuild(s, self.provider, float(c["REBUILD_AFTER_SECONDS"]),
                                                 float(c["PROBE_TIMEOUT"]))),
                (float(c["TLS_CHECK_SECONDS"]), "certificate renewal",
                 lambda s: certificates.renew_due(s, float(c["TLS_RENEW_DAYS"])))] + self.backup_tasks()

    def backup_tasks(self) -> list:
        """While backups are on (BACKUPS_ENABLED): the schedule (a backup job for each instance due, the repository's
        job when its clients changed) and the archiver's state read from each primary (for the alerts)."""
        if not self.config.get("BACKUPS_ENABLED"):
            return []
        from webapp.services import backup_health, backups

        every = float(self.config["BACKUP_SCHEDULE_SECONDS"])
        return [(every, "backups.schedule", backups.schedule),
                (every, "backups.archiver", lambda s: backup_health.refresh_archivers(s, self.box))]

    def make_worker(self, worker_id: str | None = None, maintenance: bool = True, pool: str = "all"):
        """pool: all (every job), instances (all but the dumps and restores of databases) or dumps (only those)."""
        from webapp.jobs.worker import Worker
        from webapp.services import dumps
        from webapp.services.handlers.registry import registry

        handlers = registry(self.box, self.config["IMAGE"], self.provider, self.dump_settings(),
                            int(self.config["TLS_CERT_DAYS"]), self.backup_settings())
        kinds = {"all": {}, "instances": {"skip_kinds": dumps.KINDS}, "dumps": {"kinds": dumps.KINDS}}[pool]
        return Worker(self.store, handlers, **kinds,
                      worker_id=worker_id, periodic=self.maintenance() if maintenance else [],
                      background=[self.leader_guard().run] if maintenance else [], **self.worker_settings())

    def leader_guard(self):
        """Releases the leader key of a primary whose container exited (services/leader_guard.py)."""
        from webapp.services.leader_guard import LeaderGuard

        return LeaderGuard(self.store.session, self.provider, self.config)


def services() -> Services:
    return current_app.extensions["pgaas"]
