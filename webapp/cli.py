"""`pgaas`: run (web + API + worker threads), serve, worker, user create, instance create|list|show|delete, backup,
restore, statements."""
from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
import time

import click

from webapp import create_app
from webapp.schemas.statements import ORDERS as INSIGHT_ORDERS, TOP_DEFAULT, TOP_MAX


def _app():
    return create_app()


def _actor():
    """Who acts from the console: the operating-system user, as the audit log names them (cli:root)."""
    import getpass

    from webapp.services import audit

    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return audit.Actor(f"cli:{user}", is_admin=True)


def _svc(app):
    return app.extensions["pgaas"]


@click.group()
def main():
    """pgaas: self-hosted PostgreSQL as a service."""
    logging.basicConfig(level=os.environ.get("PGAAS_LOG_LEVEL", "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


# -- processes ------------------------------------------------------------------------------------------------
def _start_workers(app, count: int, stop: threading.Event) -> list[threading.Thread]:
    """count threads for the instances' jobs, and DUMP_WORKER_THREADS more for the dumps and restores of
    databases (without them, the count take those too)."""
    dump_threads = int(app.config["DUMP_WORKER_THREADS"])
    pools = [("instances" if dump_threads else "all")] * count + ["dumps"] * dump_threads
    threads = []
    for i, pool in enumerate(pools):
        worker = _svc(app).make_worker(maintenance=(i == 0), pool=pool)
        t = threading.Thread(target=worker.run_forever, args=(stop,), name=f"worker-{i}-{pool}", daemon=True)
        t.start()
        threads.append(t)
    return threads


def _start_stopped_instances(app) -> None:
    """Hosts without systemd start no container at boot: queue a start of each available instance that has a
    stopped one (services/startup.py), once the jobs of a worker that died with the machine are failed."""
    from webapp.services import startup

    svc = _svc(app)
    try:
        svc.make_worker(maintenance=False).recover_stale()
        jobs = startup.start_stopped(svc.store.session, svc.provider, float(app.config["PROBE_TIMEOUT"]))
        jobs += [j for j in [startup.start_repo(svc.store.session, svc.backup_settings().enabled)] if j]
    except Exception:  # noqa: BLE001 - the control plane starts all the same; an admin can start the rest
        logging.getLogger(__name__).exception("the start-up check of stopped instances failed")
        return
    for job in jobs:
        what = "the backup repository" if job.kind == "backup_repo" else f"instance {job.instance_name}"
        click.echo(f"{what}: containers may be stopped; {job.kind} job {job.id} queued")


def _serve(app, host: str, port: int, threads: int = 8):
    from waitress import serve

    # waitress's own body limit (1 GiB by default) must not cut a dump upload short of DUMP_UPLOAD_MAX_BYTES
    limit = max(int(app.config["MAX_CONTENT_LENGTH"] or 0), int(app.config["DUMP_UPLOAD_MAX_BYTES"]))
    serve(app, host=host, port=port, threads=threads, ident="pgaas", max_request_body_size=limit)


def _ensure_admin(app) -> None:
    from sqlalchemy import func, select

    from webapp.services import accounts
    from webapp.store.models import User

    with _svc(app).store.session() as s:
        if s.scalar(select(func.count()).select_from(User)):
            return
        user, password = accounts.create_user(s, "admin", None, is_admin=True)
    click.echo("=" * 60)
    click.echo("  First start: created the administrator (shown once)")
    click.echo(f"    username: {user.username}")
    click.echo(f"    password: {password}")
    click.echo("=" * 60)


@main.command()
@click.option("--host", default=lambda: os.environ.get("PGAAS_HOST", "127.0.0.1"), show_default="127.0.0.1")
@click.option("--port", default=lambda: int(os.environ.get("PGAAS_PORT", "8000")), show_default="8000", type=int)
@click.option("--workers", default=None, type=int, help="worker threads (default: PGAAS_WORKER_THREADS or 2)")
def run(host, port, workers):
    """Serve the API and run job workers in this process (the embedded default)."""
    app = _app()
    _ensure_admin(app)
    stop = threading.Event()
    _start_stopped_instances(app)
    _start_workers(app, workers or int(app.config["WORKER_THREADS"]), stop)
    click.echo(f"pgaas is serving http://{host}:{port}/ (website) and /api/v1 (OpenAPI: /api/v1/openapi.json)")
    try:
        _serve(app, host, port)
    finally:
        stop.set()


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
def serve(host, port):
    """Serve the API only (run `pgaas worker` beside it)."""
    app = _app()
    _ensure_admin(app)
    _serve(app, host, port)


@main.command()
@click.option("--threads", default=1, show_default=True, type=int)
def worker(threads):
    """Run job workers until SIGTERM/SIGINT. Several may share a PostgreSQL metadata database."""
    app = _app()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    _start_stopped_instances(app)
    ts = _start_workers(app, threads, stop)
    click.echo(f"pgaas worker: {threads} thread(s), pid {os.getpid()}")
    while not stop.is_set():
        stop.wait(0.5)
    for t in ts:
        t.join(timeout=5)


@main.group()
def db():
    """Metadata database."""


@db.command("upgrade")
def db_upgrade():
    """Apply the Alembic migrations."""
    _app()
    click.echo("metadata schema is current")


# -- users ----------------------------------------------------------------------------------------------------
@main.group()
def user():
    """Accounts."""


@user.command("create")
@click.argument("username")
@click.option("--admin", is_flag=True, help="make the user an administrator")
@click.option("--password-stdin", is_flag=True, help="read the password from standard input")
def user_create(username, admin, password_stdin):
    """Create a user; without --password-stdin a password is generated and printed once."""
    from webapp.services import accounts

    password = sys.stdin.readline().rstrip("\n") if password_stdin else None
    u, pw = _audited(_app(), "user.create", "user", str(username), lambda s, svc, who: (
        accounts.create_user(s, username, password, is_admin=admin, actor=who)))
    click.echo(f"created {'administrator' if u.is_admin else 'user'} {u.username}")
    if not password_stdin:
        click.echo(f"password: {pw}")


# -- instances ------------------------------------------------------------------------------------------------
def _audited(app, action: str, kind: str, obj: str, act):
    """Run act(session, services, actor) as the console's actor and return what it returned. A refusal is audited
    as `action` on (kind, obj) and ends the command with the service's message."""
    from webapp.services import ServiceError, audit

    svc, who = _svc(app), _actor()
    try:
        with svc.store.session() as s:
            return act(s, svc, who)
    except ServiceError as exc:
        audit.record_failure(svc.store, who, action, kind, obj, exc)
        raise click.ClickException(exc.message) from None


def _queue(app, action: str, name: str, start):
    """_audited for a job on the instance `name`: start(session, actor)."""
    return _audited(app, action, "instance", name, lambda s, svc, who: start(s, who))


def _follow(app, job_id: int, out=click.echo) -> str:
    from webapp.services import jobs as jobsvc
    from webapp.store.models import ACTIVE_JOB_STATES, Job

    last = 0
    while True:
        with _svc(app).store.session() as s:
            for ev in jobsvc.events_after(s, job_id, last):
                last = ev.id
                line = f"  [{ev.status:>9}] {ev.task or ev.event}"
                if ev.host:
                    line += f" ({ev.host})"
                if ev.duration is not None:
                    line += f" {ev.duration:.1f}s"
                out(line)
                if ev.message and ev.status in ("failed", "unreachable", "canceled", "stats"):
                    out("      " + ev.message.replace("\n", "\n      "))
            job = s.get(Job, job_id)
            if job.status not in ACTIVE_JOB_STATES:
                if job.events_pruned_at is not None:
                    out(f"job {job_id}: its events were pruned after the retention period (JOB_RETENTION_DAYS)")
                out(f"job {job_id}: {job.status}" + (f": {job.error}" if job.error else ""))
                return job.status
        time.sleep(0.3)


@main.group()
def instance():
    """PostgreSQL instances (jobs are run by `pgaas run` or `pgaas worker`)."""


@instance.command("create")
@click.argument("name")
@click.option("--synchronous", is_flag=True)
@click.option("--replicas", type=int, default=None)
@click.option("--admin-database", default=None, help="database created for the admin role (default: app)")
@click.option("--wait", is_flag=True, help="follow the job's progress until it ends")
def instance_create(name, synchronous, replicas, admin_database, wait):
    from webapp.services import instances as isvc

    def create(s, svc, who):
        inst, job, pw = isvc.create(s, svc.provider, svc.box, name=name, actor=who, synchronous=synchronous,
                                    replicas=replicas, admin_database=admin_database,
                                    cert_days=int(svc.config["TLS_CERT_DAYS"]))
        return job.id, inst.admin_user, isvc.uris(inst)[0], pw

    app = _app()
    job_id, admin_user, uri, pw = _audited(app, "instance.create", "instance", str(name), create)
    click.echo(f"instance {name}: job {job_id} queued; admin user {admin_user}, password {pw} (shown once)")
    click.echo(f"  uri: {uri}")
    if wait and _follow(app, job_id) != "succeeded":
        sys.exit(1)


@instance.command("delete")
@click.argument("name")
@click.option("--wait", is_flag=True)
def instance_delete(name, wait):
    from webapp.services import instances as isvc

    app = _app()
    job_id = _queue(app, "instance.delete", name, lambda s, who: isvc.delete(s, name, who).id)
    click.echo(f"instance {name}: delete job {job_id} queued")
    if wait and _follow(app, job_id) != "succeeded":
        sys.exit(1)


@instance.command("list")
def instance_list():
    from webapp.services import instances as isvc

    app = _app()
    with _svc(app).store.session() as s:
        insts = isvc.list_all(s)
        states = isvc.live_states(insts)
        for i in insts:
            click.echo(f"{i.name:<24} {isvc.effective_status(i, states.get(i.name)):<10} {isvc.uris(i)[0]}")


@instance.command("show")
@click.argument("name")
def instance_show(name):
    from webapp.api import serializers as ser
    from webapp.services import ServiceError
    from webapp.services import instances as isvc

    app = _app()
    try:
        with _svc(app).store.session() as s:
            inst = isvc.get(s, name)
            st = isvc.live_state(inst) if inst.status == "available" else None
            click.echo(json.dumps(ser.instance(inst, st, admin=True), indent=2))
    except ServiceError as exc:
        raise click.ClickException(exc.message) from None


@main.group()
def job():
    """Jobs."""


@job.command("follow")
@click.argument("job_id", type=int)
def job_follow(job_id):
    """Print a job's events as they arrive, until it ends; exit 1 unless it succeeded."""
    if _follow(_app(), job_id) != "succeeded":
        sys.exit(1)


@instance.command("adopt")
@click.argument("name")
@click.option("--inventory", "inventory_file", required=True, type=click.Path(exists=True, dir_okay=False),
              help="the operator's inventory (YAML)")
@click.option("--vars", "vars_file", required=True, type=click.Path(exists=True, dir_okay=False),
              help="the vars file the pair was deployed with (-e @FILE)")
@click.option("--secrets", "secrets_file", default=None, type=click.Path(dir_okay=False),
              help="the secrets file (default: pgaas-NAME.secrets.yml beside the inventory)")
@click.option("--wait", is_flag=True, help="follow the adoption job until it ends")
def instance_adopt(name, inventory_file, vars_file, secrets_file, wait):
    """Take a pair deployed with ansible-playbook into the control plane (docs/operators.md)."""
    import yaml

    from webapp.services import adoption

    secrets_file = secrets_file or os.path.join(os.path.dirname(os.path.abspath(inventory_file)),
                                                adoption.secrets_filename(name))
    try:
        docs = []
        for path in (inventory_file, vars_file, secrets_file):
            with open(path) as f:
                docs.append(yaml.safe_load(f))
    except (OSError, yaml.YAMLError) as exc:
        raise click.ClickException(f"cannot read {path}: {exc}") from None
    app = _app()
    job_id = _audited(app, "instance.adopt", "instance", str(name), lambda s, svc, who: adoption.adopt(
        s, svc.provider, svc.box, svc.config, who, name=name, inventory=docs[0], vars=docs[1], secrets=docs[2],
        image=svc.config["IMAGE"], cert_days=int(svc.config["TLS_CERT_DAYS"]))[1].id)
    click.echo(f"instance {name}: adoption job {job_id} queued")
    if wait and _follow(app, job_id) != "succeeded":
        sys.exit(1)


# -- backups (issue 15) ----------------------------------------------------------------------------------------
@main.group()
def backup():
    """An instance's pgBackRest backups (jobs are run by `pgaas run` or `pgaas worker`)."""


@backup.command("list")
@click.argument("name")
def backup_list(name):
    """The backups, the recoverable window and the policy, as JSON (GET /api/v1/instances/NAME/backups)."""
    from webapp.services import ServiceError
    from webapp.services import backups as bsvc

    app = _app()
    try:
        with _svc(app).store.session() as s:
            click.echo(json.dumps(bsvc.list_backups(s, name), indent=2))
    except ServiceError as exc:
        raise click.ClickException(exc.message) from None


@backup.command("start")
@click.argument("name")
@click.option("--type", "type_", type=click.Choice(["full", "diff", "incr"]), default="full", show_default=True)
@click.option("--wait", is_flag=True, help="follow the job's progress until it ends")
def backup_start(name, type_, wait):
    from webapp.services import backups as bsvc

    app = _app()
    job_id = _queue(app, "instance.backup", name, lambda s, who: bsvc.start_backup(s, who, name, type_).id)
    click.echo(f"instance {name}: {type_} backup job {job_id} queued")
    if wait and _follow(app, job_id) != "succeeded":
        sys.exit(1)


@main.command("restore")
@click.argument("name")
@click.option("--to", "target_time", metavar="ISO", help="the point in time (ISO 8601 with an offset, e.g. "
              "2026-12-02T06:30:00Z); absent: the end of the archive")
@click.option("--confirm", required=True, metavar="NAME", help="the instance's name again: everything committed "
              "after the target is lost")
@click.option("--wait", is_flag=True, help="follow the job's progress until it ends")
def restore(name, target_time, confirm, wait):
    """Restore the instance NAME in place from its backups (POST /api/v1/instances/NAME/restore): the first
    member is restored, a full backup taken, the others rebuilt from it."""
    from webapp.services import backups as bsvc

    app = _app()
    def start(s, who):
        job, lost = bsvc.start_restore(s, who, name, target_time, confirm)
        return job.id, lost

    job_id, out = _queue(app, "instance.restore", name, start)
    click.echo(f"instance {name}: restore job {job_id} queued; lost: {out['lost']}")
    if wait and _follow(app, job_id) != "succeeded":
        sys.exit(1)


@backup.command("export-key")
def backup_export_key():
    """Print the repository's cipher pass as JSON, to keep offline: with a copy of the repository directory it
    opens every backup on another machine. Audited (backup.export_key); printed here only, never logged."""
    from webapp.services import backups as bsvc

    app = _app()
    out = _audited(app, "backup.export_key", "backup_repo", bsvc.REPO_CN, lambda s, svc, who: (
        bsvc.export_key(s, svc.box, who, bsvc.BackupSettings.from_config(app.config))))
    click.echo(json.dumps(out, indent=2))


# -- query insights (issue 16) ---------------------------------------------------------------------------------
@main.command("statements")
@click.argument("name")
@click.argument("database", required=False)
@click.option("--order", type=click.Choice(INSIGHT_ORDERS), default=INSIGHT_ORDERS[0], show_default=True)
@click.option("--limit", type=click.IntRange(1, TOP_MAX), default=TOP_DEFAULT, show_default=True)
@click.option("--reset", is_flag=True, help="forget DATABASE's statement statistics on every member")
def statements_cmd(name, database, order, limit, reset):
    """Top statements of instance NAME (or of its DATABASE) from pg_stat_statements, as JSON."""
    from webapp.services import ServiceError, audit, statements
    from webapp.services import databases as dbsvc
    from webapp.services import instances as isvc

    app = _app()
    svc, who = _svc(app), _actor()
    if reset and not database:
        raise click.UsageError("--reset needs a DATABASE")
    try:
        with svc.store.session() as s:
            inst = dbsvc.get(s, who, name, database).instance if database else isvc.get(s, name)
            out = (statements.reset(s, svc.box, who, inst, database) if reset
                   else statements.top(s, svc.box, inst, database, limit, order))
    except ServiceError as exc:
        if reset:
            audit.record_failure(svc.store, who, "database.statements_reset", "database", f"{name}/{database}", exc)
        raise click.ClickException(exc.message) from None
    click.echo(json.dumps({"instance": name, "database": database, **out}, indent=2))
