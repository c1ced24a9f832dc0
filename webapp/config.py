"""Configuration: defaults, then an instance config file, then PGAAS_* environment variables."""
from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


class Defaults:
    # Metadata store. Empty means a SQLite file in the instance folder.
    DATABASE_URL = ""
    # Fernet key for secrets at rest. Empty means a key file in the instance folder (created 0600).
    ENCRYPTION_KEY = ""
    SECRET_KEY = ""
    # Where jobs' private data dirs live. Empty means <instance>/jobs.
    JOBS_DIR = ""
    # Which provider places instances: local (podman on this machine) or openstack (a VM per member).
    PROVIDER = "local"
    # The openstack provider: a clouds.yaml (credentials stay there) and the cloud named in it; what servers boot.
    OPENSTACK_CLOUDS_YAML = ""
    OPENSTACK_CLOUD = ""
    OPENSTACK_IMAGE = "debian-12"
    OPENSTACK_FLAVOR = "m1.small"
    OPENSTACK_NETWORK = ""
    OPENSTACK_FLOATING_IP_NETWORK = ""   # empty: no floating IPs, the fixed addresses are used
    OPENSTACK_SSH_USER = "debian"
    OPENSTACK_KEY_FILE = ""              # empty: generated into the instance folder
    OPENSTACK_CONTROL_CIDRS = ""         # comma-separated; allowed to reach PostgreSQL, Patroni, etcd and SSH
    OPENSTACK_DEFAULT_STORAGE_GB = 10    # data volume size of an instance created without storage_gb
    OPENSTACK_CONNECT_TIMEOUT = 300      # seconds a new server gets to answer over SSH
    OPENSTACK_IMAGE_DELIVERY = "pull"    # how the image reaches a server: pull (registry) or archive (over SSH)
    # Host ports the local provider may publish (PostgreSQL and Patroni REST, on 127.0.0.1).
    PORT_RANGE_START = 20000
    PORT_RANGE_END = 21999
    # ssh provider: hosts listed here (JSON list of {name, address, ssh_user, ssh_port, key_path, labels, capacity};
    # more through the API), this machine's address as the hosts reach it (it then runs the third etcd member of an
    # instance on two hosts; empty: none), where members publish their ports on a host, how a missing image reaches
    # a host (archive | pull | auto: archive for a localhost/ image) and where archives are kept (empty:
    # <instance>/images).
    SSH_HOSTS = ""
    SSH_CONTROL_PLANE_ADDRESS = ""
    # Where members publish their ports on a host: "" (each host's own address, the one the members reach each
    # other on), or an address such as 0.0.0.0 (every interface) that the operator firewalls.
    SSH_PUBLISH_ADDRESS = ""
    # Addresses or CIDRs (comma-separated) the superuser and the replication role may also log in from, besides the
    # hosts and this machine's own source address toward each host: e.g. the control plane's address behind NAT.
    SSH_TRUSTED_ADDRESSES = ""
    SSH_IMAGE_DELIVERY = "auto"
    IMAGE_ARCHIVE_DIR = ""
    # The known_hosts file every SSH host (ssh provider hosts, OpenStack servers) is checked against: keys given at
    # registration are pinned, others on first contact; a changed key is refused. Empty: <instance>/ssh_known_hosts.
    SSH_KNOWN_HOSTS = ""
    # The PostgreSQL image the roles run; point it at a registry image to skip the offline build.
    IMAGE = "localhost/pgaas-postgres:15"
    # Jobs: worker threads in `pgaas run`, heartbeat interval and how stale a heartbeat must be to call a worker lost.
    WORKER_THREADS = 2
    # Worker threads of their own for the dumps and restores of tenant databases (which may run for an hour), beside
    # WORKER_THREADS, which then take every other job; 0: the WORKER_THREADS take those jobs too.
    DUMP_WORKER_THREADS = 1
    JOB_HEARTBEAT_SECONDS = 2.0
    JOB_STALE_SECONDS = 30.0
    # How long an idle worker waits at most before it looks for a queued job unasked. Only the fallback: a queued job
    # wakes the workers at once (webapp/store/wakeup.py), and an idle worker wakes every JOB_HEARTBEAT_SECONDS for
    # its stale-job sweep anyway, so a longer wait saves nothing (bench/pickup.py measures the idle CPU).
    WORKER_POLL_SECONDS = 2.0
    # Days a finished job keeps its events and its artifact directory (JOBS_DIR/<id>); the job's row (kind, status,
    # error, times) is kept for good. 0: keep them all forever.
    JOB_RETENTION_DAYS = 30
    # Seconds a probe of Patroni's REST API may take when an instance is shown.
    PROBE_TIMEOUT = 1.0
    # How often the worker looks for instance states to refresh (services/livestate.py: at most 3 s old while
    # someone looks at an instance, 15 s otherwise); the views read those states instead of asking Patroni.
    LIVE_STATE_SECONDS = 1.0
    # Release a primary's leader key as soon as its container has exited, instead of waiting for Patroni's TTL
    # (services/leader_guard.py, docs/operations.md). Never acts on a paused or hung container.
    FAST_FAILOVER = True
    # The project (ansible.cfg, playbooks/, roles/) handed to ansible-runner.
    PROJECT_DIR = str(REPO_ROOT)
    CONTAINERS_CONF = str(REPO_ROOT / "etc" / "containers.conf")
    # Tenant databases: the final dump kept on delete (grace period), where dumps live, the PostgreSQL client
    # binaries used for pg_dump/pg_restore, and how often quotas are checked.
    DUMP_GRACE_SECONDS = 7 * 24 * 3600
    DUMPS_DIR = ""
    # Dumps made for download (POST .../databases/NAME/dump) are removed this long after their job ended, and
    # uploaded archives that waited as long for their restore; the largest archive a restore may upload (bytes; the
    # only route allowed past MAX_CONTENT_LENGTH).
    DUMP_RETENTION_SECONDS = 24 * 3600
    DUMP_UPLOAD_MAX_BYTES = 4 * 1024 ** 3
    PG_CLIENT_BIN = "/usr/lib/postgresql/15/bin"
    QUOTA_CHECK_SECONDS = 30.0
    # Capacity allowances of users who are not administrators, unless an admin sets theirs (PATCH
    # /api/v1/users/NAME): total MB of quota over their databases, and how many databases they may own. 0: no limit.
    # Administrators have no limit unless one is set for them.
    DEFAULT_STORAGE_ALLOWANCE_MB = 10240
    DEFAULT_MAX_DATABASES = 10
    # Monitoring: sampling interval, raw history kept, 5-minute roll-ups kept.
    SAMPLE_SECONDS = 15.0
    METRICS_RAW_SECONDS = 24 * 3600
    METRICS_ROLLUP_SECONDS = 30 * 24 * 3600
    # A data volume's disk use is measured (a walk of its files) at most this often; samples carry its age.
    VOLUME_SIZE_SECONDS = 60.0
    # The website's session cookie: not readable by scripts, not sent on cross-site posts; Secure (sent over https
    # only) whenever PUBLIC_URL is https.
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    REMEMBER_COOKIE_HTTPONLY = True
    REMEMBER_COOKIE_SAMESITE = "Lax"
    WTF_CSRF_ENABLED = True
    WTF_CSRF_TIME_LIMIT = None
    JSON_SORT_KEYS = False
    # The front door. The address users reach the site at, e.g. https://pgaas.example.org (https: cookies Secure,
    # HSTS; empty: as requested). How many reverse proxies in front set X-Forwarded-For/-Proto/-Host/-Port/-Prefix
    # (0: the headers are ignored, the client is the peer address).
    PUBLIC_URL = ""
    PROXY_FIX_HOPS = 0
    # Failed logins (website and POST /api/v1/tokens together) allowed per client address and per username before
    # 429; where the counters live (pgaas://: the metadata store, shared by every process on it; memory://: this
    # process only).
    LOGIN_LIMIT_PER_ADDRESS = "20 per minute; 200 per hour"
    LOGIN_LIMIT_PER_USERNAME = "10 per minute; 50 per hour"
    RATELIMIT_STORAGE_URI = "pgaas://"
    # Days an API token lasts unless its request asks for fewer (or more, up to 365).
    TOKEN_DAYS = 30
    # The largest request body accepted (bytes); past it: 413.
    MAX_CONTENT_LENGTH = 1024 * 1024
    # Alerts: replication lag thresholds, and a URL that gets a JSON POST when an alert starts or ends (empty: none).
    ALERT_LAG_BYTES = 16 * 1024 * 1024
    ALERT_LAG_SECONDS = 30.0
    ALERT_WEBHOOK_URL = ""
    # Fault tolerance: a standby lost (not running or streaming) for longer than this is rebuilt from the primary
    # by the worker's maintenance, one rebuild at a time; 0 turns automatic rebuilds off.
    REBUILD_AFTER_SECONDS = 300.0
    # TLS on every hop (each instance has its own CA, sealed with ENCRYPTION_KEY): lifetime of the member, etcd and
    # control-plane certificates in days, and how many days before their end the maintenance renews them (it also
    # moves an instance from before TLS onto it, with a converge that restarts its members).
    TLS_CERT_DAYS = 365
    TLS_RENEW_DAYS = 30
    TLS_CHECK_SECONDS = 3600.0
    # A directory where the control plane also writes each instance's CA certificate as pgaas-NAME-ca.crt, the
    # sslrootcert its URIs name (e.g. a directory its clients run in); empty: none.
    TLS_CA_EXPORT_DIR = ""
    # Backups with pgBackRest (issue 15, services/backups.py): off until the image has pgBackRest and the backup
    # plays are in. When on, each new instance gets a stanza in one repository per control plane: a pgBackRest TLS
    # server container on this host, with its data in BACKUP_REPO_DIR (empty: <instance>/backup-repo), listening on
    # BACKUP_REPO_PORT, which members reach at BACKUP_REPO_HOST (empty: SSH_CONTROL_PLANE_ADDRESS if set, else
    # host.containers.internal, this host as podman's containers see it). How often the schedule is checked, and
    # the archive_timeout the members run with (the archiving alert allows it plus 60 s).
    BACKUPS_ENABLED = False
    BACKUP_REPO_DIR = ""
    BACKUP_REPO_PORT = 8432
    BACKUP_REPO_HOST = ""
    BACKUP_REPO_NAME = ""  # the repository container's name; empty: pgaas-backup-repo (tests run their own)
    BACKUP_SCHEDULE_SECONDS = 60.0
    BACKUP_ARCHIVE_TIMEOUT = 60


def load(app, test_config: dict | None = None) -> None:
    """Fill app.config: defaults, instance/config.py, PGAAS_* variables, then test_config."""
    app.config.from_object(Defaults)
    app.config.from_pyfile("config.py", silent=True)
    app.config.from_prefixed_env("PGAAS")
    if test_config:
        app.config.update(test_config)
    inst = Path(app.instance_path)
    inst.mkdir(parents=True, exist_ok=True)
    os.chmod(inst, 0o700)
    if not app.config["DATABASE_URL"]:
        app.config["DATABASE_URL"] = f"sqlite:///{inst / 'pgaas.sqlite'}"
    if not app.config["JOBS_DIR"]:
        app.config["JOBS_DIR"] = str(inst / "jobs")
    if not app.config["SSH_KNOWN_HOSTS"]:
        app.config["SSH_KNOWN_HOSTS"] = str(inst / "ssh_known_hosts")
    if not app.config["BACKUP_REPO_DIR"]:
        app.config["BACKUP_REPO_DIR"] = str(inst / "backup-repo")
    if not app.config["DUMPS_DIR"]:
        app.config["DUMPS_DIR"] = str(inst / "dumps")
    if not app.config["ENCRYPTION_KEY"]:
        app.config["ENCRYPTION_KEY"] = _key_file(inst / "encryption.key", fernet=True)
    if not app.config["SECRET_KEY"]:
        app.config["SECRET_KEY"] = _key_file(inst / "session.key", fernet=False)
    if str(app.config["PUBLIC_URL"]).lower().startswith("https://"):
        app.config.update(SESSION_COOKIE_SECURE=True, REMEMBER_COOKIE_SECURE=True, PREFERRED_URL_SCHEME="https")


def _key_file(path: Path, fernet: bool) -> str:
    """The key in `path`, generated (0600) on first use. Several processes may start together on a new instance
    folder: the key is written whole to a file of its own, then linked into place; whoever loses the link reads the
    winner's key, never an empty or a second one."""
    if not path.exists():
        import secrets
        import tempfile

        from cryptography.fernet import Fernet

        key = Fernet.generate_key().decode() if fernet else secrets.token_urlsafe(48)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # mode 0600
        try:
            with os.fdopen(fd, "w") as f:
                f.write(key)
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            os.unlink(tmp)
    return path.read_text().strip()
