"""Instance settings and rolling restarts, as jobs.

Settings go to Patroni's dynamic configuration (PATCH /config on the leader), which every member applies:
reloadable ones at once, the others (context postmaster, or passed on the command line by Patroni) wait for a
restart, which Patroni and PostgreSQL both report as pending. Everything is validated here, against the
instance's own pg_settings, before any job is queued: a bad name or value is an Invalid (422) naming the setting.

A restart restarts the standbys one at a time, then switches over to one of them and restarts the old primary
(now a standby): the primary never restarts in place, so writes pause for a switchover rather than a restart.
"""
from __future__ import annotations

import math
import re
from concurrent.futures import ThreadPoolExecutor

import psycopg

from webapp.schemas import limits as L
from webapp.services import Conflict, Invalid, audit, certificates, check_int, check_number, patroni
from webapp.services import jobs as jobsvc
from webapp.services.crypto import SecretBox
from webapp.services.pgconn import connect_primary
from webapp.store.models import Instance, Job, Member

SETTABLE_CONTEXTS = {"postmaster", "sighup", "superuser", "user", "superuser-backend", "backend"}
SESSION_CONTEXTS = {"superuser", "user"}  # PostgreSQL can check these itself with set_config()

# Settings that Patroni owns, or that would break the pair (replication, failover, authentication).
FORBIDDEN = {
    **dict.fromkeys(("listen_addresses", "port", "unix_socket_directories", "data_directory", "hba_file",
                     "ident_file", "config_file", "external_pid_file", "cluster_name"),
                    "Patroni manages it for every member"),
    **dict.fromkeys(("archive_command", "archive_mode", "archive_library", "restore_command",
                     "archive_cleanup_command", "recovery_end_command", "primary_conninfo", "primary_slot_name",
                     "promote_trigger_file", "recovery_target", "recovery_target_lsn", "recovery_target_name",
                     "recovery_target_time", "recovery_target_xid", "recovery_target_timeline",
                     "recovery_target_action", "recovery_target_inclusive", "recovery_min_apply_delay",
                     "synchronous_standby_names", "synchronous_commit", "hot_standby_feedback",
                     "wal_receiver_status_interval"),
                    "replication and recovery are Patroni's (use the instance's synchronous option)"),
    **dict.fromkeys(("ssl", "ssl_cert_file", "ssl_key_file", "ssl_ca_file", "ssl_crl_file", "ssl_crl_dir",
                     "krb_server_keyfile", "log_directory", "log_filename", "logging_collector",
                     "dynamic_library_path", "local_preload_libraries", "session_preload_libraries",
                     "jit_provider", "event_source", "data_sync_retry", "ignore_system_indexes",
                     "allow_system_table_mods", "zero_damaged_pages", "ignore_checksum_failure",
                     "ignore_invalid_pages", "fsync", "full_page_writes"),
                    "it would break the instance or its files, or risk its data"),
}
# Patroni passes these on PostgreSQL's command line: PostgreSQL's own pending_restart never sees a change of
# them, Patroni's does. Patroni's default (what null restores) and the least value it accepts (it silently ignores
# smaller ones) for each.
PATRONI_CMDLINE = {"max_connections": ("100", 25), "max_wal_senders": ("10", 3),
                   "max_replication_slots": ("10", 4), "max_prepared_transactions": ("0", 0),
                   "max_locks_per_transaction": ("64", 32), "max_worker_processes": ("8", 2),
                   "track_commit_timestamp": ("off", None), "wal_level": ("replica", None),
                   "wal_keep_size": ("128", 16)}
FORBIDDEN.update(dict.fromkeys(("hot_standby", "wal_log_hints"), "Patroni keeps it on for every member"))

NAME_RE = re.compile(r"^[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)?$")
MEMORY_UNITS = {"B": 1, "kB": 1024, "MB": 1024 ** 2, "GB": 1024 ** 3, "TB": 1024 ** 4}
TIME_UNITS = {"us": 1, "ms": 1000, "s": 1000 ** 2, "min": 60 * 1000 ** 2, "h": 3600 * 1000 ** 2,
              "d": 86400 * 1000 ** 2}
_NUMBER_RE = re.compile(r"^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*([A-Za-z]*)\s*$")
_TRUE, _FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")

PATCH_FIELDS = {"settings", "cpus", "memory_mb", "storage_gb"}


# -- values ---------------------------------------------------------------------------------------------------
def _as_text(name: str, value) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise Invalid(f"setting {name}: {value!r} is not a finite number", field=name)
        return repr(value)
    if isinstance(value, str):
        if "\x00" in value or len(value) > 1024 or any(c in value for c in "\n\r"):
            raise Invalid(f"setting {name}: the value must be one line of at most 1024 characters", field=name)
        return value
    raise Invalid(f"setting {name}: the value must be a string, number, boolean or null (to reset it)",
                  field=name)


def _base_factor(unit: str | None) -> tuple[dict | None, float]:
    """The unit table of a pg_settings unit ('8kB', 'ms', ...) and how many of its smallest unit one step is."""
    if not unit:
        return None, 1
    m = re.match(r"^(\d*)(\w+)$", unit)
    mult, u = int(m.group(1) or 1), m.group(2)
    for table in (MEMORY_UNITS, TIME_UNITS):
        if u in table:
            return table, mult * table[u]
    return None, 1


def _number(name: str, row: dict, text: str) -> float:
    m = _NUMBER_RE.match(text)
    if not m:
        raise Invalid(f"setting {name}: {text!r} is not a number{_unit_hint(row)}", field=name)
    number, unit = float(m.group(1)), m.group(2)
    table, base = _base_factor(row["unit"])
    if unit:
        if table is None or unit not in table:
            allowed = ", ".join(table) if table else "none"
            raise Invalid(f"setting {name}: unknown unit {unit!r} (valid units: {allowed})", field=name)
        number = number * table[unit] / base
    return number


def _unit_hint(row) -> str:
    return f" (in {row['unit']}, or with a unit)" if row["unit"] else ""


def normalize(name: str, row: dict, text: str) -> str:
    """Check a value against pg_settings' type, range and enum values; return it as pg_settings.setting shows
    it (integers and reals in the setting's base unit, booleans on/off, enums as listed)."""
    vartype = row["vartype"]
    if vartype == "bool":  # PostgreSQL's parse_bool: unique prefixes of true/false/yes/no, on/off, 1/0
        t = text.strip().lower()
        if t == "1" or t == "on" or (t and ("true".startswith(t) or "yes".startswith(t))):
            return "on"
        if t == "0" or (len(t) >= 2 and "off".startswith(t)) or (t and ("false".startswith(t) or "no".startswith(t))):
            return "off"
        raise Invalid(f"setting {name}: {text!r} is not a boolean (on/off, true/false, yes/no, 1/0)", field=name)
    if vartype in ("integer", "real"):
        number = _number(name, row, text)
        if vartype == "integer":
            number = float(round(number))  # PostgreSQL rounds to the nearest step of the unit too
        lo, hi = float(row["min_val"]), float(row["max_val"])
        if not lo <= number <= hi:
            raise Invalid(f"setting {name}: {text!r} is out of range ({row['min_val']} to {row['max_val']}"
                          f"{' ' + row['unit'] if row['unit'] else ''})", field=name)
        return str(int(number)) if vartype == "integer" else f"{number:g}"
    if vartype == "enum":
        values = row["enumvals"] or []
        for v in values:
            if v.lower() == text.strip().lower():
                return v
        raise Invalid(f"setting {name}: {text!r} is not one of {', '.join(values)}", field=name)
    return text  # string: checked by PostgreSQL when it is a session setting, taken as given otherwise


def _pair_rules(name: str, normalized: str, members: int) -> None:
    """Values that would break the primary/standby pair."""
    if name == "wal_level" and normalized not in ("replica", "logical"):
        raise Invalid("setting wal_level: must stay replica or logical (standbys need it)", field=name)
    if name == "hot_standby" and normalized != "on":
        raise Invalid("setting hot_standby: must stay on (standbys serve reads and health checks)", field=name)
    if name == "max_wal_senders" and int(normalized) < members + 2:
        raise Invalid(f"setting max_wal_senders: must be at least {members + 2} (one per standby plus room for "
                      "a re-clone)", field=name)
    if name == "max_replication_slots" and int(normalized) < members + 1:
        raise Invalid(f"setting max_replication_slots: must be at least {members + 1} (one slot per member)",
                      field=name)
    if name == "password_encryption" and normalized != "scram-sha-256":
        raise Invalid("setting password_encryption: must stay scram-sha-256 (the instance only accepts SCRAM "
                      "logins)", field=name)


_ROW_SQL = ("SELECT name, setting, unit, vartype, context, min_val, max_val, enumvals, boot_val "
            "FROM pg_settings WHERE lower(name) = lower(%s)")


def _row(conn, name: str) -> dict | None:
    cur = conn.execute(_ROW_SQL, (name,))
    r = cur.fetchone()
    return dict(zip([d.name for d in cur.description], r)) if r else None


def validate(conn, settings, members: int) -> dict[str, dict]:
    """Check each setting on a connection to the instance; change nothing. Returns
    {name: {"value": text or None, "expected": what pg_settings.setting will show, "reset": back to the default,
    "context": ...}}."""
    if not isinstance(settings, dict):
        raise Invalid("settings must be an object of setting names and values", field="settings")
    if len(settings) > 100:
        raise Invalid("at most 100 settings per change", field="settings")
    out = {}
    for raw_name, value in settings.items():
        name = raw_name.lower() if isinstance(raw_name, str) else raw_name
        if not isinstance(name, str) or not NAME_RE.match(name):
            raise Invalid(f"setting {raw_name!r}: not a valid setting name", field=str(raw_name))
        if name in FORBIDDEN:
            raise Invalid(f"setting {name} cannot be changed: {FORBIDDEN[name]}", field=name)
        row = _row(conn, name)
        if row is None:
            raise Invalid(f"setting {name}: PostgreSQL has no such setting", field=name)
        name = row["name"]  # as PostgreSQL spells it (DateStyle, TimeZone, ...)
        if row["context"] not in SETTABLE_CONTEXTS:
            raise Invalid(f"setting {name} cannot be changed (context {row['context']}: fixed at build or initdb)",
                          field=name)
        text, reset = _as_text(name, value), False
        if text is None and name == "shared_preload_libraries":
            # a reset goes back to pgaas's default (the role's), not PostgreSQL's empty one: pg_stat_statements stays
            text, reset = INSIGHTS_LIBRARIES, True
        if text is None:  # reset: Patroni's default for its command-line settings, PostgreSQL's otherwise
            expected = PATRONI_CMDLINE[name][0] if name in PATRONI_CMDLINE else row["boot_val"]
            if name in PATRONI_CMDLINE:
                _pair_rules(name, normalize(name, row, expected), members)
        else:
            expected = normalize(name, row, text)
            if row["context"] in SESSION_CONTEXTS:
                expected = _checked_by_postgres(conn, name, text)
            _pair_rules(name, expected, members)
            least = PATRONI_CMDLINE.get(name, (None, None))[1]
            if least is not None and int(expected) < least:
                raise Invalid(f"setting {name}: must be at least {least}{' ' + row['unit'] if row['unit'] else ''} "
                              "(Patroni ignores smaller values)", field=name)
            if name in PATRONI_CMDLINE:
                text = expected  # Patroni reads these as plain numbers, without units
            if name == "shared_preload_libraries":
                _check_libraries(conn, text)
        out[name] = {"value": text, "expected": expected, "context": row["context"], "reset": reset or text is None,
                     "restart": row["context"] == "postmaster" or name in PATRONI_CMDLINE}
    return out


def _checked_by_postgres(conn, name: str, text: str) -> str:
    """PostgreSQL's own parser, in a transaction that is rolled back: nothing changes."""
    try:
        with conn.transaction(force_rollback=True):
            conn.execute("SELECT set_config(%s, %s, true)", (name, text))
            return conn.execute("SELECT setting FROM pg_settings WHERE name = %s", (name,)).fetchone()[0]
    except psycopg.errors.DataError as exc:
        raise Invalid(f"setting {name}: {exc.diag.message_primary}", field=name) from None
    except psycopg.errors.InvalidParameterValue as exc:
        raise Invalid(f"setting {name}: {exc.diag.message_primary}", field=name) from None


def _check_libraries(conn, text: str) -> None:
    """A library that is not installed would stop PostgreSQL from starting after the restart."""
    libdir = conn.execute("SELECT setting FROM pg_config WHERE name = 'PKGLIBDIR'").fetchone()[0]
    for lib in [x.strip().strip('"') for x in text.split(",") if x.strip()]:
        if not re.match(r"^[a-z0-9_]+$", lib):
            raise Invalid(f"setting shared_preload_libraries: {lib!r} is not a library name",
                          field="shared_preload_libraries")
        # (a record IS NOT NULL only when every field is: creation is always NULL on Linux, so ask for size)
        found = conn.execute("SELECT (pg_stat_file(%s, true)).size IS NOT NULL",
                             (f"{libdir}/{lib}.so",)).fetchone()[0]
        if not found:
            raise Invalid(f"setting shared_preload_libraries: library {lib!r} is not installed",
                          field="shared_preload_libraries")
    _keeps_insights(text)


INSIGHTS_LIBRARIES = "pg_stat_statements"  # roles/postgres_node/defaults/main.yml: postgres_node_parameters


def _keeps_insights(text: str | None) -> None:
    """pg_stat_statements stays loaded: the statements pages and API read it (services/statements.py)."""
    if "pg_stat_statements" not in [x.strip().strip('"') for x in (text or "").split(",")]:
        raise Invalid("setting shared_preload_libraries: must keep pg_stat_statements (query insights read it); "
                      "list your libraries beside it, e.g. 'pg_stat_statements, auto_explain'",
                      field="shared_preload_libraries")


# -- requests -------------------------------------------------------------------------------------------------
def _sizes(inst: Instance, cpus, memory_mb, storage_gb) -> dict:
    sizes = {}
    if cpus is not None:
        sizes["cpus"] = check_number(cpus, "cpus", L.CPUS_MIN, L.CPUS_MAX)
    if memory_mb is not None:
        sizes["memory_mb"] = check_int(memory_mb, "memory_mb", L.MEMORY_MB_MIN, L.MEMORY_MB_MAX)
    if storage_gb is not None:
        sizes["storage_gb"] = check_int(storage_gb, "storage_gb", L.STORAGE_GB_MIN, L.STORAGE_GB_MAX)
        if inst.storage_gb is not None and sizes["storage_gb"] < inst.storage_gb:
            raise Invalid("storage_gb cannot shrink", field="storage_gb")
    return sizes


def change(s, box: SecretBox, inst: Instance, actor: audit.Actor, *, settings=None, cpus=None, memory_mb=None,
           storage_gb=None) -> Job:
    """Validate a settings/size change against the live instance, then queue the job that applies it; audited."""
    if inst.status != "available":
        raise Conflict(f"instance {inst.name!r} is {inst.status}, not available")
    if settings is None and cpus is None and memory_mb is None and storage_gb is None:
        raise Invalid("nothing to change: give settings, cpus, memory_mb or storage_gb")
    sizes = _sizes(inst, cpus, memory_mb, storage_gb)
    checked = {}
    if settings is not None:
        if not isinstance(settings, dict) or not settings:
            raise Invalid("settings must be a non-empty object of setting names and values", field="settings")
        if busy := jobsvc.active_job(s, inst.name):  # no need to ask PostgreSQL when the answer is 409 anyway
            raise Conflict(f"instance {inst.name!r} is busy with job {busy.id} ({busy.kind}, {busy.status}); "
                           "wait for it or cancel it", job_id=busy.id)
        with connect_primary(inst, box) as conn:
            checked = validate(conn, settings, len(inst.members))
    job = jobsvc.enqueue(s, "instance_settings", inst.name, actor.username, params={"settings": checked, "sizes": sizes})
    audit.record(s, actor, "instance.settings", "instance", inst.name,
                 detail=f"job {job.id}: {', '.join(sorted(settings or {})) or 'sizes'}")
    return job


def restart(s, inst: Instance, actor: audit.Actor) -> Job:
    if inst.status != "available":
        raise Conflict(f"instance {inst.name!r} is {inst.status}, not available")
    job = jobsvc.enqueue(s, "instance_restart", inst.name, actor.username)
    audit.record(s, actor, "instance.restart", "instance", inst.name, detail=f"job {job.id}")
    return job


# -- reads ----------------------------------------------------------------------------------------------------
def current(inst: Instance, box: SecretBox, timeout: float = 2.0, tls=None) -> dict:
    """Each setting changed through pgaas, plus any that waits for a restart, as every member has it. The members
    are asked at the same time (the website's instance page waits for the slowest, not for their sum)."""
    managed = (inst.meta or {}).get("settings") or {}
    password = box.open(inst.secrets_enc)["pgaas_superuser_password"]
    ms = list(inst.members)
    with ThreadPoolExecutor(max_workers=max(1, len(ms))) as pool:
        ctx = (tls or certificates.ClientTLS(box)).context(inst)
        members = list(pool.map(lambda m: member_settings(inst, m, managed, password, timeout, ctx), ms))
    return {"instance": inst.name,
            "requested": {k: v.get("value") for k, v in sorted(managed.items())},
            "pending_restart": any(e["pending_restart"] or any(x["pending_restart"] for x in e["settings"])
                                   for e in members),
            "members": members}


def member_settings(inst: Instance, m: Member, managed: dict, password: str, timeout: float, ctx) -> dict:
    answer = patroni.get(m, "/patroni", timeout, ctx) or {}
    entry = {"name": m.name, "role": answer.get("role"), "state": answer.get("state", "unreachable"),
             "pending_restart": bool(answer.get("pending_restart")), "settings": []}
    try:
        with psycopg.connect(host=m.address, port=m.pg_port, user="postgres", dbname="postgres",
                             password=password, connect_timeout=int(timeout) + 1, **certificates.libpq_params(inst),
                             autocommit=True, application_name="pgaas-control-plane") as conn:
            rows = conn.execute(
                "SELECT name, setting, unit, context, pending_restart FROM pg_settings "
                "WHERE name = ANY(%s) OR pending_restart ORDER BY name", (sorted(managed),)).fetchall()
    except psycopg.Error as exc:
        entry["error"] = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        rows = []
    for name, setting, unit, context, pending in rows:
        want = (managed.get(name) or {}).get("expected")
        # Patroni's command-line settings: PostgreSQL cannot know a change is pending, Patroni does
        if not pending and want is not None and setting != want and entry["pending_restart"] \
                and (context == "postmaster" or name in PATRONI_CMDLINE):
            pending = True
        entry["settings"].append({"name": name, "setting": setting, "unit": unit, "context": context,
                                  "pending_restart": bool(pending)})
    return entry
