"""The paths of the OpenAPI document (webapp/api/openapi.py): one entry per route, each body a model of
webapp.schemas."""
from __future__ import annotations

from pydantic import BaseModel

from webapp.api.pagination import DEFAULT_LIMIT, MAX_LIMIT, MAX_OFFSET
from webapp.schemas import backups as bk
from webapp.schemas import requests as rq
from webapp.schemas import responses as rs
from webapp.schemas import statements as st

REF = "#/components/schemas/{model}"
ERROR = {"$ref": "#/components/responses/Error"}
PAGE_QUERY = [{"name": "limit", "in": "query", "description": "how many items at most",
               "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT}},
              {"name": "offset", "in": "query", "description": "how many items to skip",
               "schema": {"type": "integer", "minimum": 0, "maximum": MAX_OFFSET, "default": 0}}]
PERIOD = [{"name": "from", "in": "query", "schema": {"type": "string", "format": "date-time"}},
          {"name": "to", "in": "query", "schema": {"type": "string", "format": "date-time"}}]
LIVE_QUERY = [{"name": "live", "in": "query", "schema": {"type": "boolean", "default": False},
               "description": "admins: ask Patroni now instead of reading the state the worker keeps (at most 3 s "
                              "old while someone views the instance, 15 s otherwise)"}]
REPORT_QUERY = [*PERIOD, {"name": "format", "in": "query", "schema": {"enum": ["json", "csv", "html", "pdf"],
                                                                       "default": "json"}}]


def ref(model: type[BaseModel]) -> dict:
    return {"$ref": REF.format(model=model.__name__)}


def path_params(*names: str, kind: str = "string") -> list[dict]:
    return [{"name": n, "in": "path", "required": True, "schema": {"type": kind}} for n in names]


def query(name: str, kind: str = "string", **schema) -> dict:
    return {"name": name, "in": "query", "schema": {"type": kind, **schema}}


def page_of(key: str, items: dict, **extra) -> dict:
    """A page of a list: the items under key, with limit, offset and next."""
    return {"type": "object", "required": [key, "limit", "offset", "next"],
            "properties": {**extra, key: {"type": "array", "items": items},
                           "limit": {"type": "integer"}, "offset": {"type": "integer"},
                           "next": {"type": ["string", "null"],
                                    "description": "the next page (same query, offset + limit); null on the last "
                                                   "page"}}}


ANY_INSTANCE = {"anyOf": [ref(rs.Instance), ref(rs.InstanceSummary)]}  # an admin sees an Instance
ACCEPTED = {"202": ("Accepted: the job", rs.JobAccepted)}


def op(summary: str, ok: dict, errors: tuple = (), body=None, body_required: bool = True, **extra) -> dict:
    """ok: {status: (description, a model, a JSON schema, {content type: schema} or None)}."""
    responses = {}
    for status, (desc, shape) in ok.items():
        if shape is None:
            responses[status] = {"description": desc}
            continue
        if isinstance(shape, type):
            shape = ref(shape)
        content = shape if all("/" in k for k in shape) else {"application/json": {"schema": shape}}
        responses[status] = {"description": desc, "content": content}
    out = {"summary": summary, "responses": {**responses, **{str(c): ERROR for c in errors}}, **extra}
    if body is not None:
        content = body if isinstance(body, dict) else {"application/json": {"schema": ref(body)}}
        out["requestBody"] = {"required": body_required, "content": content}
    return out


def listing(summary: str, key: str, items: dict, errors=(400, 401), params=(), **extra) -> dict:
    return op(summary, {"200": ("One page of the list", page_of(key, items, **extra))}, errors,
              parameters=[*params, *PAGE_QUERY])


NAME = path_params("name")
DB = path_params("instance", "name")
JOB = path_params("job_id", kind="integer")
PEM = {"application/x-pem-file": {"schema": {"type": "string"}}}
BINARY = {"type": "string", "format": "binary"}
REPORT = {"application/json": {"schema": ref(rs.Report)}, "text/csv": {"schema": {"type": "string"}},
          "text/html": {"schema": {"type": "string"}}, "application/pdf": {"schema": BINARY}}

PATHS = {
    "/tokens": {
        "get": listing("Your API tokens (never the secret part)", "tokens", ref(rs.Token)),
        "post": op("Exchange a username and password for an API token. Failed tries are limited per client "
                   "address and per username (LOGIN_LIMIT_PER_ADDRESS, LOGIN_LIMIT_PER_USERNAME, shared with the "
                   "website's log in): past them 429 with Retry-After; each refusal is audited",
                   {"201": ("Created", rs.TokenCreated)}, (400, 401, 413, 422, 429), rq.TokenCreate, security=[])},
    "/tokens/{token_id}": {
        "parameters": path_params("token_id", kind="integer"),
        "delete": op("Revoke a token (yours; admins: any)", {"204": ("Revoked", None)}, (401, 404))},
    "/instances": {
        "get": listing("List instances (admins: all; others: those open to them, as InstanceSummary)", "instances",
                       ANY_INSTANCE, params=LIVE_QUERY),
        "post": op("Create an instance (admins): a job deploys etcd and a Patroni primary/standby pair",
                   {"202": ("Accepted", rs.InstanceCreated)}, (400, 401, 403, 409, 422), rq.InstanceCreate)},
    "/instances/{name}": {
        "parameters": NAME,
        "get": op("Show an instance with Patroni's view of it, and how old that view is (others than admins: its "
                  "name, status and version, and 404 for an instance not open to them)",
                  {"200": ("The instance", ANY_INSTANCE)}, (401, 404), parameters=LIVE_QUERY),
        "patch": op("Change settings and sizes (admins): a job applies settings through Patroni's dynamic "
                    "configuration on every member (reloadable ones at once, others pending a restart) and container "
                    "limits one member at a time. Names and values are checked first (422)",
                    ACCEPTED, (400, 401, 403, 404, 409, 422), rq.InstanceChange),
        "delete": op("Delete an instance (admins): a job removes its containers, volumes and network. Refused (409) "
                     "while it holds tenant databases, unless force=true", ACCEPTED, (401, 403, 404, 409),
                     parameters=[query("force", "boolean")])},
    "/instances/{name}/access": {
        "parameters": NAME,
        "get": op("Who sees the instance (admins)", {"200": ("Who", rs.InstanceAccessOf)}, (401, 403, 404)),
        "put": op("Open the instance to every user (users: null, the default) or restrict it to the named users "
                  "(admins always see it; []: admins only). Databases already on it stay with their owners; a user "
                  "it is not open to gets 404 for it and cannot create databases on it",
                  {"200": ("Who", rs.InstanceAccessOf)}, (400, 401, 403, 404, 422), rq.InstanceAccessChange)},
    "/instances/{name}/ca.crt": {
        "parameters": NAME,
        "get": op("The instance's CA certificate (PEM; anyone who sees the instance): save it as the sslrootcert "
                  "its URIs name to connect with sslmode=verify-full. 404 for an instance made before TLS that was "
                  "not converged yet", {"200": ("PEM", PEM)}, (401, 404))},
    "/instances/{name}/certificates": {
        "parameters": NAME,
        "post": op("Renew the instance's certificates now (admins; the worker does it TLS_RENEW_DAYS before they "
                   "end): a job issues new member, etcd and control-plane certificates from the instance's CA and "
                   "puts them in place without a restart; rotate_ca: a new CA too (clients must download it again; "
                   "etcd restarts). An instance made before TLS is converged onto it instead (every member "
                   "restarts)", ACCEPTED, (400, 401, 403, 404, 409), rq.CertificateRenewal, body_required=False)},
    "/instances/{name}/retry": {
        "parameters": NAME,
        "post": op("Retry the failed create or delete of an instance (admins)", ACCEPTED,
                   (400, 401, 403, 404, 409))},
    "/instances/{name}/restart": {
        "parameters": NAME,
        "post": op("Restart every member (admins): a job restarts the standbys one at a time, then switches over to "
                   "one of them, so writes pause for a switchover, not a restart", ACCEPTED,
                   (400, 401, 403, 404, 409))},
    "/instances/{name}/switchover": {
        "parameters": NAME,
        "post": op("Move the primary on purpose (admins): a job asks Patroni for a switchover from the running "
                   "primary to the candidate (default: the synchronous standby, else the least lagging one) and "
                   "waits until the old primary streams from the new one. In synchronous mode Patroni accepts only "
                   "the synchronous standby: its refusal is the job's error. A candidate that is not a running "
                   "standby is refused first (422)", ACCEPTED, (400, 401, 403, 404, 409, 422), rq.Switchover,
                   body_required=False)},
    "/instances/{name}/failover": {
        "parameters": NAME,
        "post": op("Force a failover to a running standby (admins), e.g. when the primary is unhealthy but Patroni "
                   "did not fail over on its own: a job asks Patroni (/failover) and waits until the candidate takes "
                   "writes; the old primary's rejoin is reported, not awaited", ACCEPTED,
                   (400, 401, 403, 404, 409, 422), rq.Failover)},
    "/instances/{name}/rebuild": {
        "parameters": NAME,
        "post": op("Rebuild a lost standby (admins): a job removes what is left of the member (container, data "
                   "volume, configuration), starts it again empty (on another host where the provider has one; the "
                   "local provider keeps its name and ports, so the URI does not change) and Patroni clones it from "
                   "the current primary; done when it streams. The current primary cannot be rebuilt (422). The "
                   "worker does the same on its own for a standby lost longer than REBUILD_AFTER_SECONDS",
                   ACCEPTED, (400, 401, 403, 404, 409, 422), rq.Rebuild)},
    "/instances/{name}/history": {
        "parameters": NAME,
        "get": listing("Every change of primary, newest first (admins): recorded by the switchover and failover "
                       "jobs, and by the worker from Patroni's history for the automatic ones", "changes",
                       ref(rs.PrimaryChange), (400, 401, 403, 404), instance={"type": "string"})},
    "/instances/{name}/settings": {
        "parameters": NAME,
        "get": op("Settings changed through pgaas and any waiting for a restart, as each member has them (admins)",
                  {"200": ("The settings", rs.InstanceSettings)}, (401, 403, 404, 409))},
    "/instances/{name}/metrics": {
        "parameters": [*NAME, *PERIOD],
        "get": op("An instance's samples (admins): connections, WAL rate, lag per standby, timeline, member states, "
                  "container CPU, memory and volume use", {"200": ("The samples", rs.Metrics)},
                  (401, 403, 404, 422))},
    "/instances/{name}/report": {
        "parameters": [*NAME, *REPORT_QUERY],
        "get": op("An instance's report for a period (admins): connections, WAL rate, replication lag, "
                  "availability, failovers", {"200": ("The report", REPORT)}, (401, 403, 404, 422))},
    "/jobs": {
        "get": listing("List jobs, newest first (admins: all; others: those they started)", "jobs", ref(rs.Job),
                       params=[query("instance")])},
    "/jobs/{job_id}": {
        "parameters": JOB,
        "get": op("Show a job and its events (as they arrive; ?after=<event id> for the new ones)",
                  {"200": ("The job", rs.Job)}, (400, 401, 404), parameters=[query("after", "integer", minimum=0)])},
    "/jobs/{job_id}/cancel": {
        "parameters": JOB,
        "post": op("Cancel a queued or running job", ACCEPTED, (401, 404, 409))},
    "/jobs/{job_id}/dump": {
        "parameters": JOB,
        "get": op("Download the archive of a succeeded dump job (pg_dump custom format, streamed; Range requests "
                  "work). 409 while the job has not succeeded; 404 once the dump was removed after "
                  "DUMP_RETENTION_SECONDS", {"200": ("The archive", {"application/octet-stream": {"schema": BINARY}})},
                  (401, 404, 409))},
    "/jobs/{job_id}/retry": {
        "parameters": JOB,
        "post": op("Run a failed or canceled job again (admins; a user: their own database dump, delete and restore "
                   "jobs): a create or delete through the instance's retry, any other job with the same parameters. "
                   "Only the newest job of an instance (409 otherwise)", ACCEPTED, (400, 401, 403, 404, 409))},
    "/hosts": {
        "get": listing("List the ssh provider's hosts (admins): address, SSH user and port, key reference (a path, "
                       "or 'stored': a stored key is never returned), labels, capacity (members), used and free "
                       "capacity, the instances and members on each host, and its pinned SSH host keys (host_keys: "
                       "type and SHA256 fingerprint)", "hosts", ref(rs.Host), (400, 401, 403),
                       provider={"type": "string"}),
        "post": op("Register a host (admins): the ssh provider may place members on it. Give exactly one of "
                   "key_path (a file the control plane reads) or private_key (stored encrypted, never returned). "
                   "host_key (optional): the host's OpenSSH public host key line(s), pinned in the control plane's "
                   "known_hosts; without it the first connection pins the key it presents. A host presenting "
                   "another key is refused", {"201": ("Created", rs.Host)}, (400, 401, 403, 409, 422),
                   rq.HostCreate)},
    "/hosts/{name}": {
        "parameters": NAME,
        "get": op("Show a host with what runs on it (admins)", {"200": ("The host", rs.Host)}, (401, 403, 404)),
        "delete": op("Remove a registered host (admins); refused (409) while members or etcd of an instance run on "
                     "it, or when it is listed in the configuration", {"204": ("Removed", None)},
                     (401, 403, 404, 409))},
    "/hosts/{name}/host_key": {
        "parameters": NAME,
        "put": op("Replace a registered host's pinned SSH host key(s) (admins), e.g. after it was reinstalled; "
                  "host_key null or empty: forget the pin, the next connection pins the key it presents",
                  {"200": ("The host", rs.Host)}, (400, 401, 403, 404, 409, 422), rq.HostKey)},
    "/users": {
        "get": listing("List users (admins)", "users", ref(rs.User), (400, 401, 403)),
        "post": op("Create a user (admins)", {"201": ("Created", rs.UserOf)}, (400, 401, 403, 409, 422),
                   rq.UserCreate)},
    "/users/{username}": {
        "parameters": path_params("username"),
        "get": op("Show a user with their capacity (admins: anyone; others: themselves)",
                  {"200": ("The user", rs.UserOf)}, (401, 403, 404)),
        "patch": op("Set a user's capacity allowance (admins): storage_allowance_mb, the total MB of quota over "
                    "their databases, and max_databases; null puts one back to the configured default "
                    "(PGAAS_DEFAULT_STORAGE_ALLOWANCE_MB, PGAAS_DEFAULT_MAX_DATABASES; administrators: no limit). "
                    "Lowering it below what is given out takes nothing away: they just cannot grow",
                    {"200": ("The user", rs.UserOf)}, (400, 401, 403, 404, 422), rq.AllowanceChange),
        "delete": op("Delete a user (admins). Refused (409) while they own databases, unless transfer_to=<user> or "
                     "delete_databases=true says what happens to them", {"204": ("Deleted", None)},
                     (401, 403, 404, 409), parameters=[query("transfer_to"), query("delete_databases", "boolean")])},
    "/me": {
        "get": op("Your own account, with your capacity: allowance, what your databases take of it and use, and "
                  "what is left", {"200": ("You", rs.UserOf)}, (401,))},
    "/me/password": {
        "post": op("Change your own password", {"204": ("Changed", None)}, (400, 401, 422), rq.PasswordChange)},
    "/admin/audit": {
        "get": listing("The audit log (admins): who, what, which object, when, from where, outcome", "events",
                       ref(rs.AuditEvent), (400, 401, 403), params=[query("actor"), query("object")])},
    "/admin/usage": {
        "get": op("The newest sample of every instance and database (admins)", {"200": ("The samples", rs.Usage)},
                  (401, 403))},
    "/alerts": {
        "get": listing("Alerts firing now (admins: all; a user: those of their own databases): quota at 80%, "
                       "replication lag over ALERT_LAG_BYTES or ALERT_LAG_SECONDS, instance degraded, volume over "
                       "85% full", "alerts", ref(rs.Alert))},
    "/databases": {
        "get": listing("Your databases (admins: all, filterable by owner and instance)", "databases",
                       ref(rs.Database), params=[query("owner"), query("instance")])},
    "/instances/{instance}/databases": {
        "parameters": path_params("instance"),
        "get": listing("Your databases on an instance (admins: all of them)", "databases", ref(rs.Database),
                       (400, 401, 404)),
        "post": op("Create a database with its own login role; the password is in this answer only",
                   {"201": ("Created", rs.DatabaseOf)}, (400, 401, 404, 409, 422, 503), rq.DatabaseCreate)},
    "/instances/{instance}/databases/{name}": {
        "parameters": DB,
        "get": op("Show a database with its size and connections", {"200": ("The database", rs.Database)},
                  (401, 404)),
        "patch": op("Change quota_mb (within the owner's storage allowance, whoever asks; under one it cannot be "
                    "null), connection_limit or parameters (the settings a database may change, as at create; null "
                    "resets one); PostgreSQL's own message comes back as a 422",
                    {"200": ("The database", rs.Database)}, (400, 401, 404, 409, 422, 503), rq.DatabaseChange),
        "delete": op("Drop the database and its role after ending its sessions. By default a job (database_delete) "
                     "first takes a final dump (pg_dump custom format, kept for the grace period for a restore) and "
                     "then drops it: 202 with the job; if the dump fails, nothing is dropped. final_dump=false drops "
                     "it at once: 204", {**ACCEPTED, "204": ("Deleted (final_dump=false)", None)},
                     (401, 404, 409, 503), parameters=[query("final_dump", "boolean", default=True)])},
    "/instances/{instance}/databases/{name}/dump": {
        "parameters": DB,
        "post": op("Dump the database for download, as a job (database_dump): 202 at once with the job (Location: "
                   "its URL; its events arrive live). Once it succeeded, its result has size_bytes, expires_at and "
                   "download (GET /jobs/{job_id}/dump). One dump, delete or restore at a time per database (409 "
                   "naming the busy job)", ACCEPTED, (400, 401, 404, 409))},
    "/instances/{instance}/databases/{name}/restore": {
        "parameters": [*DB, {**query("clean", "boolean", default=False), "description": "with an archive: drop "
                             "the objects it holds before creating them again"}],
        "post": op("Restore, as a job (database_restore): 202 at once with the job. With a body (a pg_dump "
                   "custom-format archive, raw or as the multipart field 'file', up to DUMP_UPLOAD_MAX_BYTES; 413 "
                   "past it): into the existing database NAME (yours). Without a body: a deleted database comes "
                   "back from its final dump, created again now with a new password (in the answer, shown once). "
                   "The restore runs in one transaction, as the database's own role: a failed or canceled one "
                   "changes nothing, and its job's error says so; a file that is not an archive is a 422",
                   {"202": ("Accepted: the restore job", rs.DatabaseRestore)},
                   (400, 401, 404, 409, 413, 422, 503),
                   {"application/octet-stream": {"schema": BINARY}, "multipart/form-data": {"schema": {
                       "type": "object", "properties": {"file": BINARY}}}}, body_required=False)},
    "/instances/{instance}/databases/{name}/password": {
        "parameters": DB,
        "post": op("Set a new password (generated when none is given); the old one stops at once",
                   {"200": ("The new password", rs.DatabasePasswordSet)}, (400, 401, 404, 409, 422, 503),
                   rq.DatabasePassword, body_required=False)},
    "/instances/{instance}/databases/{name}/metrics": {
        "parameters": [*DB, *PERIOD],
        "get": op("A database's samples in a period (default: the last hour): size, connections, tps, cache hit "
                  "ratio, quota use, tuples written, deadlocks, temp bytes", {"200": ("The samples", rs.Metrics)},
                  (401, 404, 422))},
    "/instances/{instance}/databases/{name}/report": {
        "parameters": [*DB, *REPORT_QUERY],
        "get": op("A database's report for a period (default: the last hour): size growth, peak and mean "
                  "connections, mean and peak TPS, cache hit ratio, quota use, failovers and availability; html and "
                  "pdf carry charts, csv has one row per sample", {"200": ("The report", REPORT)}, (401, 404, 422))},
    "/instances/adopt": {
        "post": op("Adopt a pair an operator deployed with ansible-playbook (admins): the body is the operator's "
                   "inventory, vars file and secrets file as objects. Everything is checked first (422: a member "
                   "name, a host the provider does not know, a missing or mismatched secret; 409: the name exists "
                   "or a port is another instance's); then the instance is stored with its secrets sealed and an "
                   "instance_adopt job converges it with the deploy playbook (idempotent) and fills its metadata",
                   {"202": ("Accepted: the instance and its adoption job", rs.InstanceAdopted)},
                   (400, 401, 403, 409, 422), rq.InstanceAdopt)},
    "/instances/{name}/inventory": {
        "parameters": [*NAME, query("secrets", "boolean", default=False)],
        "get": op("The instance as an operator's inventory (admins): its hosts, its vars (the playbooks' extravars) "
                  "under all.vars and as a vars file; with ?secrets=true (audited) also the secrets file's content",
                  {"200": ("The inventory", rs.InstanceInventory)}, (400, 401, 403, 404))},
    "/metrics": {
        "get": op("Prometheus text format (admins); also served at /metrics",
                  {"200": ("The metrics", {"text/plain": {"schema": {"type": "string"}}})}, (401, 403))},
    "/openapi.json": {
        "get": op("This document", {"200": ("This document (OpenAPI 3.1)", {"type": "object"})}, security=[])},
}

# Backups (issue 15; webapp/api/backups.py)
PATHS.update({
    "/instances/{name}/backups": {
        "parameters": NAME,
        "get": op("The instance's backups in the repository (admins; as the last backup job found them), the "
                  "recoverable window {from, to}, the schedule and retention, the archiver's state, and earlier "
                  "instances of this name deleted with their backups kept", {"200": ("The backups", bk.BackupList)},
                  (401, 403, 404, 409)),
        "post": op("Back up now (admins): a job takes a full (default), diff or incr backup with pgBackRest from the "
                   "standby; 409 while another job acts on the instance or when it has no backups",
                   ACCEPTED, (400, 401, 403, 404, 409, 422), bk.BackupStart, body_required=False)},
    "/instances/{name}/restore": {
        "parameters": NAME,
        "post": op("Restore in place (admins): the instance goes back to target_time (or the end of its archive); "
                   "everything committed after it is lost, so confirm must be the instance's name. A job archives "
                   "the current WAL, restores the first member with pgBackRest, takes a full backup, then rebuilds "
                   "the other members from it. 422 naming the window for a target outside it; 409 while another "
                   "job acts on the instance or before its first backup",
                   {"202": ("The job, the target and what is lost", bk.RestoreStarted)},
                   (400, 401, 403, 404, 409, 422), bk.RestoreInPlace)},
    "/instances/{name}/backup_policy": {
        "parameters": NAME,
        "get": op("The instance's backup schedule and retention (admins)",
                  {"200": ("The policy", bk.BackupPolicyOf)}, (401, 403, 404, 409)),
        "put": op("Change the schedule (a full every N days, a differential every M days, M < N or 0) and the "
                  "retention (count of fulls, or days) (admins); fields not given stay",
                  {"200": ("The policy", bk.BackupPolicyOf)}, (400, 401, 403, 404, 409, 422),
                  bk.BackupPolicyChange)},
})

# Query insights (issue 16; webapp/api/statements.py)
STATEMENT_QUERY = [query("limit", "integer", minimum=1, maximum=st.TOP_MAX, default=st.TOP_DEFAULT),
                   query("order", enum=list(st.ORDERS), default="total_time")]
PATHS.update({
    "/instances/{instance}/databases/{name}/statements": {
        "parameters": [*DB, *STATEMENT_QUERY],
        "get": op("The database's top statements from pg_stat_statements (its owner and admins): calls, total and "
                  "mean time, rows, normalized text; merged over the members, so the read-only URI's count too. "
                  "Only this database's statements, never another's",
                  {"200": ("The statements", st.Statements)}, (401, 404, 409, 422))},
    "/instances/{instance}/databases/{name}/statements/reset": {
        "parameters": DB,
        "post": op("Forget the database's statement statistics on every member (its owner and admins)",
                   {"200": ("Reset", st.StatementsReset)}, (400, 401, 404, 409))},
    "/instances/{name}/statements": {
        "parameters": [*NAME, *STATEMENT_QUERY,
                       query("database", description="only this database's statements (by name)")],
        "get": op("The instance's top statements over all its databases, or one of them (admins)",
                  {"200": ("The statements", st.Statements)}, (401, 403, 404, 409, 422))},
})
