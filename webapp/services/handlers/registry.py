"""The one registry of job handlers: job kind -> handler, handed to the worker (webapp/extensions.py)."""
from __future__ import annotations

from webapp.services.backups import BackupSettings
from webapp.services.certificates import CERT_DAYS
from webapp.services import livestate
from webapp.services.crypto import SecretBox
from webapp.services.databases import DumpSettings
from webapp.services.handlers.backups import BackupHandler, InstanceRestoreHandler, RepoHandler
from webapp.services.handlers.base import JobHandler
from webapp.services.handlers.certificates import RenewHandler
from webapp.services.handlers.dumps import DumpHandler, RestoreHandler
from webapp.services.handlers.failover import RebuildHandler, SwitchHandler
from webapp.services.handlers.lifecycle import AdoptHandler, CreateHandler, DeleteHandler, StartHandler
from webapp.services.handlers.settings import RestartHandler, SettingsHandler


class ForgetsState:
    """A handler whose jobs, when they end, drop the instance's recorded live state (services/livestate.py), so the
    first view after a switchover, a rebuild or a restart asks Patroni instead of showing the state from before."""

    def __init__(self, inner: JobHandler):
        self.inner = inner

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def finish(self, s, job, outcome) -> None:
        self.inner.finish(s, job, outcome)
        if job.instance_name:
            livestate.forget(s, job.instance_name)


def registry(box: SecretBox, image: str, provider, dump_settings: DumpSettings,
             cert_days: int = CERT_DAYS, backup: BackupSettings | None = None) -> dict[str, JobHandler]:
    """Every job kind the worker runs, with its handler. box: the control plane's SecretBox; image: the PostgreSQL
    image the members run; provider: where hosts come from; dump_settings: where dumps go and for how long;
    cert_days: the lifetime of the certificates a renewal issues (TLS_CERT_DAYS); backup: the backup repository
    (BACKUPS_ENABLED, BACKUP_REPO_*; None: backups off)."""
    backup = backup or BackupSettings()
    switch, dump = SwitchHandler(box, image), DumpHandler(box, dump_settings)
    handlers = {
        "instance_create": CreateHandler(box, image, provider, backup),
        "instance_delete": DeleteHandler(box, image, provider),
        "instance_adopt": AdoptHandler(box, image, provider),
        "instance_start": StartHandler(box, image),
        "instance_certificates": RenewHandler(box, image, cert_days),
        "instance_settings": SettingsHandler(box, provider),
        "instance_restart": RestartHandler(box),
        "instance_switchover": switch,
        "instance_failover": switch,
        "instance_rebuild": RebuildHandler(box, image),
        "database_dump": dump,
        "database_delete": dump,
        "database_restore": RestoreHandler(box, dump_settings),
        "instance_backup": BackupHandler(box, backup),
        "backup_repo": RepoHandler(box, backup),
        "instance_restore": InstanceRestoreHandler(box, image, backup),
    }
    return {kind: ForgetsState(h) for kind, h in handlers.items()}
