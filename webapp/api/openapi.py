"""The OpenAPI 3 document, served at /api/v1/openapi.json. tests/api/test_openapi.py checks that it and the
routes agree, and validates live responses against its schemas."""
from __future__ import annotations

from webapp.api import bp
from webapp.api.pagination import DEFAULT_LIMIT, MAX_LIMIT

_ERR = {"$ref": "#/components/responses/Error"}


def _json(schema_ref: str, desc: str = "OK") -> dict:
    return {"description": desc, "content": {"application/json": {"schema": {"$ref": schema_ref}}}}


def _errors(*codes) -> dict:
    return {str(c): _ERR for c in codes}


PAGE_QUERY = [{"name": "limit", "in": "query", "description": "how many items at most",
               "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT}},
              {"name": "offset", "in": "query", "description": "how many items to skip",
               "schema": {"type": "integer", "minimum": 0, "default": 0}}]


def _page(key: str, items: dict, **extra) -> dict:
    """A 200 answer with one page of a list (and the query parameters that choose it: PAGE_QUERY)."""
    return {"description": "One page of the list", "content": {"application/json": {"schema": {
        "type": "object", "required": [key, "limit", "offset", "next"],
        "properties": {**extra, key: {"type": "array", "items": items},
                       "limit": {"type": "integer"}, "offset": {"type": "integer"},
                       "next": {"type": ["string", "null"],
                                "description": "the next page (same query, offset + limit); null on the last page"}}}}}}


NAME = {"type": "string", "pattern": "^[a-z][a-z0-9-]{2,39}$"}
# an admin sees an Instance; any other user an InstanceSummary
ANY_INSTANCE = {"anyOf": [{"$ref": "#/components/schemas/Instance"}, {"$ref": "#/components/schemas/InstanceSummary"}]}
MEMBER = {
    "type": "object",
    "required": ["host", "port", "container", "state"],
    "properties": {"name": {"type": "string"}, "host": {"type": "string"}, "address": {"type": "string"},
                   "port": {"type": "integer"}, "container": {"type": "string"}, "state": {"type": "string"},
                   "timeline": {"type": ["integer", "null"]},
                   "pending_restart": {"type": "boolean", "description": "a changed setting waits for a restart"}},
}
REPORT_QUERY = [{"name": "from", "in": "query", "schema": {"type": "string", "format": "date-time"}},
                {"name": "to", "in": "query", "schema": {"type": "string", "format": "date-time"}},
                {"name": "format", "in": "query", "schema": {"enum": ["json", "csv", "html", "pdf"],
                                                              "default": "json"}}]
REPORT_CONTENT = {"description": "The report", "content": {
    "application/json": {"schema": {"type": "object", "required": ["kind", "instance", "from", "to", "summary",
                                                                   "points"]}},
    "text/csv": {}, "text/html": {}, "application/pdf": {}}}
ALERT = {"type": "object", "required": ["id", "kind", "severity", "instance", "message", "at"],
         "properties": {"id": {"type": "string"},
                        "kind": {"enum": ["quota", "replication_lag", "degraded", "volume"]},
                        "severity": {"enum": ["warning", "critical"]}, "instance": {"type": "string"},
                        "database": {"type": "string"}, "member": {"type": "string"},
                        "message": {"type": "string"}, "at": {"type": "string", "format": "date-time"}}}
SPEC = {
    "openapi": "3.1.0",
    "info": {"title": "pgaas API", "version": "1",
             "description": "PostgreSQL as a service. Authenticate with `Authorization: Bearer <token>` "
                            "from POST /api/v1/tokens (it expires, after TOKEN_DAYS by default; a password change "
                            "revokes it; a token of scope read is refused (403) on every method but GET). Errors "
                            "are {error: {code, message}}; a body over MAX_CONTENT_LENGTH is refused (413). Lists "
                            f"come in pages: ?limit= (default {DEFAULT_LIMIT}, at most {MAX_LIMIT}) and ?offset=, "
                            "with a next link."},
    "servers": [{"url": "/api/v1"}],
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "responses": {"Error": _json("#/components/schemas/Error", "Error")},
        "schemas": {
            "Error": {"type": "object", "required": ["error"], "properties": {"error": {
                "type": "object", "required": ["code", "message"],
                "properties": {"code": {"type": "string"}, "message": {"type": "string"},
                               "details": {"type": "object"}}}}},
            "JobRef": {"type": "object", "required": ["id", "kind", "status", "url"],
                       "properties": {"id": {"type": "integer"}, "kind": {"type": "string"},
                                      "status": {"enum": ["queued", "running", "succeeded", "failed", "canceled",
                                                          "error"]},
                                      "url": {"type": "string"}}},
            "JobEvent": {"type": "object", "required": ["id", "time", "event", "status"],
                         "properties": {"id": {"type": "integer"}, "time": {"type": "string"},
                                        "event": {"type": "string"}, "task": {"type": "string"},
                                        "host": {"type": "string"}, "status": {"type": "string"},
                                        "duration": {"type": ["number", "null"]}, "message": {"type": "string"}}},
            "Job": {"type": "object",
                    "required": ["id", "kind", "status", "instance", "created_at", "started_at", "finished_at",
                                 "error"],
                    "properties": {"id": {"type": "integer"}, "kind": {"type": "string"},
                                   "status": {"enum": ["queued", "running", "succeeded", "failed", "canceled",
                                                       "error"]},
                                   "instance": {"type": ["string", "null"]}, "created_by": {"type": "string"},
                                   "created_at": {"type": "string"},
                                   "started_at": {"type": ["string", "null"]},
                                   "finished_at": {"type": ["string", "null"]},
                                   "error": {"type": ["string", "null"]}, "cancel_requested": {"type": "boolean"},
                                   "result": {"type": "object", "description": "what the job did; a "
                                              "database_dump's: instance, database, size_bytes, expires_at, "
                                              "download (once it succeeded, until expires_at) or removed"},
                                   "url": {"type": "string"},
                                   "events_pruned": {"type": "boolean",
                                                     "description": "true once the job ended more than "
                                                                    "JOB_RETENTION_DAYS ago and its events and "
                                                                    "artifacts were removed (events is then "
                                                                    "empty); the job itself is kept"},
                                   "events_pruned_at": {"type": ["string", "null"]},
                                   "events": {"type": "array", "items": {"$ref": "#/components/schemas/JobEvent"}}}},
            "Member": MEMBER,
            "Alert": ALERT,
            "Replica": {"allOf": [MEMBER, {"type": "object", "properties": {
                "lag_bytes": {"type": ["integer", "null"]}, "sync_state": {"enum": ["sync", "async", None]}}}]},
            "Instance": {
                "type": "object",
                "required": ["name", "status", "primary", "replicas", "same_host", "uri", "readonly_uri",
                             "created_at"],
                "properties": {
                    "name": NAME,
                    "status": {"enum": ["creating", "starting", "available", "degraded", "failed", "deleting"],
                               "description": "degraded: available, but Patroni reports no running primary or a "
                                              "standby that is not running (status_reason says which): a failure "
                                              "now could lose the instance; a rebuild (manual, or automatic after "
                                              "REBUILD_AFTER_SECONDS) brings it back to available; starting: a "
                                              "start job brings its stopped containers back after a host or "
                                              "control plane restart"},
                    "status_reason": {"type": "string"}, "provider": {"type": "string"},
                    "synchronous": {"type": "boolean"}, "replicas_wanted": {"type": "integer"},
                    "storage_gb": {"type": ["integer", "null"]}, "cpus": {"type": ["number", "null"]},
                    "memory_mb": {"type": ["integer", "null"]},
                    "primary": {"oneOf": [{"$ref": "#/components/schemas/Member"}, {"type": "null"}]},
                    "replicas": {"type": "array", "items": {"$ref": "#/components/schemas/Replica"}},
                    "same_host": {"type": "boolean"}, "placement_note": {"type": "string"},
                    "admin_user": {"type": "string"},
                    "admin_database": {"type": "string",
                                       "description": "database owned by admin_user, created with the instance; "
                                                      "the URIs point at it"},
                    "uri": {"type": "string", "description": "libpq multi-host URI, target_session_attrs=read-write; "
                                                             "no password; sslmode=verify-full and sslrootcert="
                                                             "pgaas-<name>-ca.crt (save GET .../ca.crt under that "
                                                             "name in the client's directory, or give its path)"},
                    "readonly_uri": {"type": "string"},
                    "metadata": {"type": "object", "description": "admins only: deploy results and host facts"},
                    "created_at": {"type": "string"}, "updated_at": {"type": "string"}, "url": {"type": "string"},
                    "active_job": {"oneOf": [{"$ref": "#/components/schemas/JobRef"}, {"type": "null"}]},
                    "settings": {"type": "object", "description": "settings changed through pgaas, as given"},
                    "pending_restart": {"type": "boolean",
                                        "description": "some member waits for a restart (POST .../restart)"},
                    "version": {"type": ["string", "null"], "description": "PostgreSQL's version at the last deploy"},
                    "access": {"$ref": "#/components/schemas/InstanceAccess"},
                    "tls": {"oneOf": [{"$ref": "#/components/schemas/InstanceTLS"}, {"type": "null"}]},
                },
            },
            "InstanceTLS": {
                "type": "object", "description": "the instance's certificates (admins; null: made before TLS, "
                                                 "not converged yet); no key is ever shown",
                "properties": {
                    "active": {"type": "boolean", "description": "the members serve these certificates"},
                    "not_after": {"type": "string", "description": "when the first member, etcd or control-plane "
                                                                   "certificate ends; renewed TLS_RENEW_DAYS before"},
                    "issued_at": {"type": "string"}, "ca_not_after": {"type": "string"},
                    "ca_fingerprint_sha256": {"type": "string"},
                    "renewing": {"type": "boolean", "description": "a renewal is under way"},
                    "ca_cert_url": {"type": "string"},
                    "sslrootcert": {"type": "string", "description": "the file name the URIs give as sslrootcert"}}},
            "InstanceAccessOf": {
                "type": "object", "required": ["instance", "users"],
                "properties": {"instance": {"type": "string"},
                               "users": {"type": ["array", "null"], "items": {"type": "string"}}}},
            "InstanceSummary": {
                "type": "object", "additionalProperties": False, "required": ["name", "status", "version", "url"],
                "description": "an instance as a user who is not an admin sees it",
                "properties": {"name": NAME, "status": {"type": "string"}, "version": {"type": ["string", "null"]},
                               "url": {"type": "string"},
                               "ca_cert_url": {"type": ["string", "null"],
                                               "description": "the instance's CA certificate (PEM), for "
                                                              "sslmode=verify-full"}}},
            "InstanceAccess": {
                "type": "object", "required": ["users"],
                "properties": {"users": {"type": ["array", "null"], "items": {"type": "string"},
                                         "description": "null: every user sees the instance; a list: only these "
                                                        "users (and admins); empty: admins only"}}},
            "InstanceCreate": {
                "type": "object", "required": ["name"], "additionalProperties": False,
                "properties": {"name": NAME, "synchronous": {"type": "boolean", "default": False},
                               "replicas": {"type": "integer", "minimum": 1, "maximum": 3, "default": 1},
                               "storage_gb": {"type": "integer", "minimum": 1},
                               "cpus": {"type": "number", "minimum": 0.1},
                               "memory_mb": {"type": "integer", "minimum": 256},
                               "admin_password": {"type": "string", "minLength": 12, "maxLength": 128},
                               "admin_database": {"type": "string", "pattern": "^[a-z][a-z0-9_]{0,62}$",
                                                  "default": "app",
                                                  "description": "database created for and owned by the admin "
                                                                 "role; the URIs point at it"}}},
            "InstanceCreated": {
                "type": "object", "required": ["instance", "job", "admin_user", "admin_database", "admin_password"],
                "properties": {"instance": {"$ref": "#/components/schemas/Instance"},
                               "job": {"$ref": "#/components/schemas/JobRef"}, "admin_user": {"type": "string"},
                               "admin_database": {"type": "string"},
                               "admin_password": {"type": "string", "description": "shown in this answer only"}}},
            "User": {"type": "object", "required": ["username", "is_admin", "created_at"],
                     "properties": {"username": {"type": "string"}, "is_admin": {"type": "boolean"},
                                    "created_at": {"type": "string"},
                                    "storage_allowance_mb": {
                                        "type": ["integer", "null"],
                                        "description": "total MB of quota over their databases (null: no limit); "
                                                       "the set value or the configured default"},
                                    "max_databases": {"type": ["integer", "null"],
                                                      "description": "databases they may own (null: no limit)"},
                                    "capacity": {"$ref": "#/components/schemas/Capacity"}}},
            "UserOf": {"type": "object", "required": ["user"],
                       "properties": {"user": {"$ref": "#/components/schemas/User"}}},
            "Capacity": {
                "type": "object", "description": "A user's allowance, what their databases take of it, and what is "
                                                 "left (in GET /users/{username}, PATCH /users/{username} and GET "
                                                 "/me)",
                "required": ["storage_allowance_mb", "storage_allocated_mb", "storage_left_mb", "max_databases",
                             "databases", "databases_left"],
                "properties": {
                    "storage_allowance_mb": {"type": ["integer", "null"], "description": "null: no limit"},
                    "storage_allowance_is_default": {"type": "boolean",
                                                     "description": "it is the configured default, none is set"},
                    "storage_allocated_mb": {"type": "integer", "description": "their databases' quotas, added up"},
                    "storage_used_bytes": {"type": ["integer", "null"],
                                           "description": "their databases' sizes, measured now (null: an instance "
                                                          "did not answer)"},
                    "storage_left_mb": {"type": ["integer", "null"],
                                        "description": "what new or larger quotas may still take (null: no limit; "
                                                       "0 while a database of theirs has no quota)"},
                    "max_databases": {"type": ["integer", "null"], "description": "null: no limit"},
                    "max_databases_is_default": {"type": "boolean"},
                    "databases": {"type": "integer"},
                    "databases_left": {"type": ["integer", "null"]},
                    "databases_without_quota": {"type": "array", "items": {"type": "string"},
                                                "description": "instance/name of each"}}},
            "Token": {"type": "object", "required": ["id", "prefix", "scope", "expires_at", "revoked", "expired"],
                      "properties": {"id": {"type": "integer"}, "name": {"type": "string"},
                                     "prefix": {"type": "string"},
                                     "scope": {"enum": ["read", "write"],
                                               "description": "read: GET only; write: all its user may do"},
                                     "created_at": {"type": "string"}, "expires_at": {"type": "string"},
                                     "last_used_at": {"type": ["string", "null"]}, "revoked": {"type": "boolean"},
                                     "expired": {"type": "boolean"}}},
            "Database": {
                "type": "object",
                "required": ["name", "instance", "owner", "role", "uri", "readonly_uri", "quota_mb",
                             "connection_limit", "parameters", "status", "created_at"],
                "properties": {"name": {"type": "string"}, "instance": {"type": "string"},
                               "owner": {"type": "string"}, "role": {"type": "string"}, "uri": {"type": "string"},
                               "readonly_uri": {"type": "string"},
                               "ca_cert_url": {"type": ["string", "null"],
                                               "description": "the instance's CA certificate (PEM): save it as the "
                                                              "sslrootcert the URIs name (sslmode=verify-full)"},
                               "quota_mb": {"type": ["integer", "null"]},
                               "connection_limit": {"type": ["integer", "null"]},
                               "parameters": {"type": "object", "additionalProperties": {"type": "string"}},
                               "status": {"enum": ["ok", "over_quota", "locked"],
                                          "description": "over_quota: read-only; locked: written past its quota "
                                                         "anyway, its role may not log in until it is within its "
                                                         "quota again"},
                               "created_at": {"type": "string"},
                               "size_bytes": {"type": "integer"}, "connections": {"type": "integer"},
                               "password": {"type": "string", "description": "only in the create answer"},
                               "url": {"type": "string"}}},
            "AuditEvent": {"type": "object", "required": ["at", "actor", "action", "object", "outcome"],
                           "properties": {"id": {"type": "integer"}, "at": {"type": "string"},
                                          "actor": {"type": "string"}, "action": {"type": "string"},
                                          "object_type": {"type": "string"}, "object": {"type": "string"},
                                          "remote_addr": {"type": "string"},
                                          "outcome": {"enum": ["ok", "failed", "denied"]},
                                          "detail": {"type": "string"}}},
            "InstanceChange": {
                "type": "object", "additionalProperties": False,
                "properties": {"settings": {"type": "object", "description": "setting name -> value; null resets it",
                                            "additionalProperties": {"type": ["string", "number", "boolean",
                                                                              "null"]}},
                               "cpus": {"type": "number", "minimum": 0.1},
                               "memory_mb": {"type": "integer", "minimum": 256},
                               "storage_gb": {"type": "integer", "minimum": 1}}},
            "InstanceSettings": {
                "type": "object", "required": ["instance", "requested", "pending_restart", "members"],
                "properties": {
                    "instance": {"type": "string"},
                    "requested": {"type": "object", "description": "settings changed through pgaas, as given"},
                    "pending_restart": {"type": "boolean"},
                    "members": {"type": "array", "items": {
                        "type": "object", "required": ["name", "pending_restart", "settings"],
                        "properties": {
                            "name": {"type": "string"}, "role": {"type": ["string", "null"]},
                            "state": {"type": "string"}, "pending_restart": {"type": "boolean"},
                            "error": {"type": "string"},
                            "settings": {"type": "array", "items": {
                                "type": "object", "required": ["name", "setting", "context", "pending_restart"],
                                "properties": {"name": {"type": "string"}, "setting": {"type": "string"},
                                               "unit": {"type": ["string", "null"]},
                                               "context": {"type": "string"},
                                               "pending_restart": {"type": "boolean"}}}}}}}}},
            "PrimaryChange": {
                "type": "object", "required": ["at", "from", "to", "cause", "timeline"],
                "properties": {
                    "at": {"type": "string", "description": "when the new primary was promoted (Patroni's history)"},
                    "from": {"type": ["string", "null"]}, "to": {"type": "string"},
                    "cause": {"enum": ["switchover", "failover", "automatic"],
                              "description": "switchover or failover: asked through pgaas (a restart's switchover "
                                             "counts as a switchover); automatic: Patroni on its own"},
                    "timeline": {"type": "integer", "description": "the new primary's timeline"},
                    "switch_lsn": {"type": ["integer", "null"], "description": "WAL position of the switch"},
                    "lag_bytes": {"type": ["integer", "null"],
                                  "description": "how far the new primary was behind: before the switch for a job, "
                                                 "as last sampled for an automatic change"},
                    "reason": {"type": "string"}, "job": {"type": ["string", "null"]},
                    "recorded_at": {"type": "string"}}},
            "JobAccepted": {"type": "object", "required": ["job"],
                            "properties": {"job": {"$ref": "#/components/schemas/JobRef"}}},
        },
    },
    "security": [{"bearer": []}],
    "paths": {
        "/tokens": {"get": {"summary": "Your API tokens (never the secret part)", "parameters": PAGE_QUERY,
                            "responses": {"200": _page("tokens", {"$ref": "#/components/schemas/Token"}),
                                          **_errors(400, 401)}},
                    "post": {
            "summary": "Exchange a username and password for an API token. Failed tries are limited per client "
                       "address and per username (LOGIN_LIMIT_PER_ADDRESS, LOGIN_LIMIT_PER_USERNAME, shared with "
                       "the website's log in): past them 429 with Retry-After; each refusal is audited",
            "security": [],
            "requestBody": {"required": True, "content": {"application/json": {"schema": {
                "type": "object", "required": ["username", "password"], "additionalProperties": False,
                "properties": {"username": {"type": "string"}, "password": {"type": "string"},
                               "name": {"type": "string"},
                               "scope": {"enum": ["read", "write"], "default": "write"},
                               "expires_in_days": {"type": "integer", "minimum": 1, "maximum": 365,
                                                   "description": "default: TOKEN_DAYS (30)"}}}}}},
            "responses": {"201": {"description": "Created", "content": {"application/json": {"schema": {
                "allOf": [{"$ref": "#/components/schemas/Token"},
                          {"type": "object", "required": ["token", "username", "is_admin"],
                           "properties": {"token": {"type": "string", "description": "shown in this answer only"},
                                          "username": {"type": "string"}, "is_admin": {"type": "boolean"}}}]}}}},
                **_errors(400, 401, 413, 422, 429)}}},
        "/instances": {
            "get": {"summary": "List instances (admins: all; others: those open to them, as InstanceSummary)",
                    "parameters": PAGE_QUERY,
                    "responses": {"200": _page("instances", ANY_INSTANCE), **_errors(400, 401)}},
            "post": {"summary": "Create an instance (admins): a job deploys etcd and a Patroni primary/standby pair",
                     "requestBody": {"required": True, "content": {"application/json": {
                         "schema": {"$ref": "#/components/schemas/InstanceCreate"}}}},
                     "responses": {"202": _json("#/components/schemas/InstanceCreated", "Accepted"),
                                   **_errors(400, 401, 403, 409, 422)}},
        },
        "/instances/{name}": {
            "parameters": [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}],
            "get": {"summary": "Show an instance with its live Patroni state (others than admins: its name, status "
                               "and version, and 404 for an instance not open to them)",
                    "responses": {"200": {"description": "OK",
                                          "content": {"application/json": {"schema": ANY_INSTANCE}}},
                                  **_errors(401, 404)}},
            "patch": {"summary": "Change settings and sizes (admins): a job applies settings through Patroni's "
                                 "dynamic configuration on every member (reloadable ones at once, others pending a "
                                 "restart) and container limits one member at a time. Names and values are "
                                 "checked first (422)",
                      "requestBody": {"required": True, "content": {"application/json": {
                          "schema": {"$ref": "#/components/schemas/InstanceChange"}}}},
                      "responses": {"202": _json("#/components/schemas/JobAccepted", "Accepted"),
                                    **_errors(400, 401, 403, 404, 409, 422)}},
            "delete": {"summary": "Delete an instance (admins): a job removes its containers, volumes and network. "
                                  "Refused (409) while it holds tenant databases, unless force=true",
                       "parameters": [{"name": "force", "in": "query", "schema": {"type": "boolean"}}],
                       "responses": {"202": _json("#/components/schemas/JobAccepted", "Accepted"),
                                     **_errors(401, 403, 404, 409)}},
        },
        "/instances/{name}/access": {
            "parameters": [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}],
            "get": {"summary": "Who sees the instance (admins)",
                    "responses": {"200": _json("#/components/schemas/InstanceAccessOf"), **_errors(401, 403, 404)}},
            "put": {"summary": "Open the instance to every user (users: null, the default) or restrict it to the "
                               "named users (admins always see it; []: admins only). Databases already on it stay "
                               "with their owners; a user it is not open to gets 404 for it and cannot create "
                               "databases on it",
                    "requestBody": {"required": True, "content": {"application/json": {"schema": {
                        "$ref": "#/components/schemas/InstanceAccess"}}}},
                    "responses": {"200": _json("#/components/schemas/InstanceAccessOf"),
                                  **_errors(400, 401, 403, 404, 422)}},
        },
        "/instances/{name}/ca.crt": {
            "parameters": [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}],
            "get": {"summary": "The instance's CA certificate (PEM; anyone who sees the instance): save it as the "
                               "sslrootcert its URIs name to connect with sslmode=verify-full. 404 for an instance "
                               "made before TLS that was not converged yet",
                    "responses": {"200": {"description": "PEM", "content": {"application/x-pem-file": {
                        "schema": {"type": "string"}}}}, **_errors(401, 404)}},
        },
        "/instances/{name}/certificates": {
            "parameters": [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}],
            "post": {"summary": "Renew the instance's certificates now (admins; the worker does it TLS_RENEW_DAYS "
                                "before they end): a job issues new member, etcd and control-plane certificates "
                                "from the instance's CA and puts them in place without a restart; rotate_ca: a new "
                                "CA too (clients must download it again; etcd restarts). An instance made before "
                                "TLS is converged onto it instead (every member restarts)",
                     "requestBody": {"content": {"application/json": {"schema": {
                         "type": "object", "additionalProperties": False,
                         "properties": {"rotate_ca": {"type": "boolean", "default": False}}}}}},
                     "responses": {"202": _json("#/components/schemas/JobAccepted", "Accepted"),
                                   **_errors(400, 401, 403, 404, 409)}},
        },
        "/instances/{name}/retry": {
            "parameters": [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}],
            "post": {"summary": "Retry the failed create or delete of an instance (admins)",
                     "responses": {"202": _json("#/components/schemas/JobAccepted", "Accepted"),
                                   **_errors(400, 401, 403, 404, 409)}},
        },
        "/instances/{name}/restart": {
            "parameters": [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}],
            "post": {"summary": "Restart every member (admins): a job restarts the standbys one at a time, then "
                               "switches over to one of them, so writes pause for a switchover, not a restart",
                     "responses": {"202": _json("#/components/schemas/JobAccepted", "Accepted"),
                                   **_errors(400, 401, 403, 404, 409)}},
        },
        "/instances/{name}/switchover": {
            "parameters": [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}],
            "post": {"summary": "Move the primary on purpose (admins): a job asks Patroni for a switchover from the "
                               "running primary to the candidate (default: the synchronous standby, else the least "
                               "lagging one) and waits until the old primary streams from the new one. In "
                               "synchronous mode Patroni accepts only the synchronous standby: its refusal is the "
                               "job's error. A candidate that is not a running standby is refused first (422)",
                     "requestBody": {"content": {"application/json": {"schema": {
                         "type": "object", "additionalProperties": False,
                         "properties": {"candidate": {"type": "string", "description": "a member's name"}}}}}},
                     "responses": {"202": _json("#/components/schemas/JobAccepted", "Accepted"),
                                   **_errors(400, 401, 403, 404, 409, 422)}},
        },
        "/instances/{name}/failover": {
            "parameters": [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}],
            "post": {"summary": "Force a failover to a running standby (admins), e.g. when the primary is unhealthy "
                               "but Patroni did not fail over on its own: a job asks Patroni (/failover) and waits "
                               "until the candidate takes writes; the old primary's rejoin is reported, not awaited",
                     "requestBody": {"required": True, "content": {"application/json": {"schema": {
                         "type": "object", "required": ["candidate"], "additionalProperties": False,
                         "properties": {"candidate": {"type": "string", "description": "a member's name"}}}}}},
                     "responses": {"202": _json("#/components/schemas/JobAccepted", "Accepted"),
                                   **_errors(400, 401, 403, 404, 409, 422)}},
        },
        "/instances/{name}/rebuild": {
            "parameters": [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}],
            "post": {"summary": "Rebuild a lost standby (admins): a job removes what is left of the member "
                               "(container, data volume, configuration), starts it again empty (on another host "
                               "where the provider has one; the local provider keeps its name and ports, so the "
                               "URI does not change) and Patroni clones it from the current primary; done when it "
                               "streams. The current primary cannot be rebuilt (422). The worker does the same on "
                               "its own for a standby lost longer than REBUILD_AFTER_SECONDS",
                     "requestBody": {"required": True, "content": {"application/json": {"schema": {
                         "type": "object", "required": ["member"], "additionalProperties": False,
                         "properties": {"member": {"type": "string", "description": "a member's name"}}}}}},
                     "responses": {"202": _json("#/components/schemas/JobAccepted", "Accepted"),
                                   **_errors(400, 401, 403, 404, 409, 422)}},
        },
        "/instances/{name}/history": {
            "parameters": [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}},
                           *PAGE_QUERY],
            "get": {"summary": "Every change of primary, newest first (admins): recorded by the switchover and "
                              "failover jobs, and by the worker from Patroni's history for the automatic ones",
                    "responses": {"200": _page("changes", {"$ref": "#/components/schemas/PrimaryChange"},
                                               instance={"type": "string"}),
                                  **_errors(400, 401, 403, 404)}},
        },
        "/instances/{name}/settings": {
            "parameters": [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}],
            "get": {"summary": "Settings changed through pgaas and any waiting for a restart, as each member has "
                               "them (admins)",
                    "responses": {"200": _json("#/components/schemas/InstanceSettings"),
                                  **_errors(401, 403, 404, 409)}},
        },
        "/jobs": {"get": {
            "summary": "List jobs, newest first (admins: all; others: those they started)",
            "parameters": [{"name": "instance", "in": "query", "schema": {"type": "string"}}, *PAGE_QUERY],
            "responses": {"200": _page("jobs", {"$ref": "#/components/schemas/Job"}), **_errors(400, 401)}}},
        "/jobs/{job_id}": {
            "parameters": [{"name": "job_id", "in": "path", "required": True, "schema": {"type": "integer"}}],
            "get": {"summary": "Show a job and its events (as they arrive; ?after=<event id> for the new ones)",
                    "parameters": [{"name": "after", "in": "query", "schema": {"type": "integer"}}],
                    "responses": {"200": _json("#/components/schemas/Job"), **_errors(400, 401, 404)}},
        },
        "/jobs/{job_id}/cancel": {
            "parameters": [{"name": "job_id", "in": "path", "required": True, "schema": {"type": "integer"}}],
            "post": {"summary": "Cancel a queued or running job",
                     "responses": {"202": _json("#/components/schemas/JobAccepted", "Accepted"),
                                   **_errors(401, 404, 409)}},
        },
        "/jobs/{job_id}/dump": {
            "parameters": [{"name": "job_id", "in": "path", "required": True, "schema": {"type": "integer"}}],
            "get": {"summary": "Download the archive of a succeeded dump job (pg_dump custom format, streamed; "
                               "Range requests work). 409 while the job has not succeeded; 404 once the dump was "
                               "removed after DUMP_RETENTION_SECONDS",
                    "responses": {"200": {"description": "The archive", "content": {
                        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}},
                        **_errors(401, 404, 409)}},
        },
        "/jobs/{job_id}/retry": {
            "parameters": [{"name": "job_id", "in": "path", "required": True, "schema": {"type": "integer"}}],
            "post": {"summary": "Run a failed or canceled job again (admins; a user: their own database dump, "
                               "delete and restore jobs): a create or delete through the "
                               "instance's retry, any other job with the same parameters. Only the newest job "
                               "of an instance (409 otherwise)",
                     "responses": {"202": _json("#/components/schemas/JobAccepted", "Accepted"),
                                   **_errors(400, 401, 403, 404, 409)}},
        },
        "/hosts": {
            "get": {"summary": "List the ssh provider's hosts (admins): address, SSH user and port, key reference "
                               "(a path, or 'stored': a stored key is never returned), labels, capacity (members), "
                               "used and free capacity, the instances and members on each host, and its pinned SSH "
                               "host keys (host_keys: type and SHA256 fingerprint)",
                    "parameters": PAGE_QUERY,
                    "responses": {"200": _page("hosts", {"type": "object"}, provider={"type": "string"}),
                                  **_errors(400, 401, 403)}},
            "post": {"summary": "Register a host (admins): the ssh provider may place members on it. Give exactly "
                                "one of key_path (a file the control plane reads) or private_key (stored "
                                "encrypted, never returned). host_key (optional): the host's OpenSSH public host "
                                "key line(s), pinned in the control plane's known_hosts; without it the first "
                                "connection pins the key it presents. A host presenting another key is refused",
                     "requestBody": {"required": True, "content": {"application/json": {"schema": {
                         "type": "object", "additionalProperties": False,
                         "required": ["name", "address", "ssh_user"],
                         "properties": {"name": {"type": "string", "pattern": "^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$"},
                                        "address": {"type": "string", "description": "IP address or DNS name"},
                                        "ssh_user": {"type": "string"},
                                        "ssh_port": {"type": "integer", "default": 22},
                                        "key_path": {"type": "string"},
                                        "private_key": {"type": "string", "writeOnly": True},
                                        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                                        "capacity": {"type": "integer", "default": 4, "minimum": 1},
                                        "host_key": {"type": "string",
                                                     "description": "e.g. 'ssh-ed25519 AAAA...', one key a line"}}}}}},
                     "responses": {"201": {"description": "Created"}, **_errors(400, 401, 403, 409, 422)}},
        },
        "/hosts/{name}": {
            "parameters": [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}],
            "get": {"summary": "Show a host with what runs on it (admins)",
                    "responses": {"200": {"description": "OK"}, **_errors(401, 403, 404)}},
            "delete": {"summary": "Remove a registered host (admins); refused (409) while members or etcd of an "
                                  "instance run on it, or when it is listed in the configuration",
                       "responses": {"204": {"description": "Removed"}, **_errors(401, 403, 404, 409)}},
        },
        "/hosts/{name}/host_key": {
            "parameters": [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}],
            "put": {"summary": "Replace a registered host's pinned SSH host key(s) (admins), e.g. after it was "
                               "reinstalled; host_key null or empty: forget the pin, the next connection pins the "
                               "key it presents",
                    "requestBody": {"required": True, "content": {"application/json": {"schema": {
                        "type": "object", "additionalProperties": False, "required": ["host_key"],
                        "properties": {"host_key": {"type": ["string", "null"]}}}}}},
                    "responses": {"200": {"description": "OK"}, **_errors(400, 401, 403, 404, 409, 422)}},
        },
        "/users": {
            "get": {"summary": "List users (admins)", "parameters": PAGE_QUERY,
                    "responses": {"200": _page("users", {"$ref": "#/components/schemas/User"}),
                                  **_errors(400, 401, 403)}},
            "post": {"summary": "Create a user (admins)",
                     "requestBody": {"required": True, "content": {"application/json": {"schema": {
                         "type": "object", "required": ["username", "password"],
                         "properties": {"username": {"type": "string"}, "password": {"type": "string"},
                                        "is_admin": {"type": "boolean", "default": False}}}}}},
                     "responses": {"201": {"description": "Created"}, **_errors(400, 401, 403, 409, 422)}},
        },
        "/users/{username}": {
            "parameters": [{"name": "username", "in": "path", "required": True, "schema": {"type": "string"}}],
            "get": {"summary": "Show a user with their capacity (admins: anyone; others: themselves)",
                    "responses": {"200": _json("#/components/schemas/UserOf"), **_errors(401, 403, 404)}},
            "patch": {"summary": "Set a user's capacity allowance (admins): storage_allowance_mb, the total MB of "
                                 "quota over their databases, and max_databases; null puts one back to the "
                                 "configured default (PGAAS_DEFAULT_STORAGE_ALLOWANCE_MB, PGAAS_DEFAULT_MAX_DATABASES;"
                                 " administrators: no limit). Lowering it below what is given out takes nothing "
                                 "away: they just cannot grow",
                      "requestBody": {"required": True, "content": {"application/json": {"schema": {
                          "type": "object", "additionalProperties": False, "minProperties": 1,
                          "properties": {"storage_allowance_mb": {"type": ["integer", "null"], "minimum": 0,
                                                                  "maximum": 1024 ** 3},
                                         "max_databases": {"type": ["integer", "null"], "minimum": 0,
                                                           "maximum": 100000}}}}}},
                      "responses": {"200": _json("#/components/schemas/UserOf"),
                                    **_errors(400, 401, 403, 404, 422)}},
            "delete": {"summary": "Delete a user (admins). Refused (409) while they own databases, unless "
                                  "transfer_to=<user> or delete_databases=true says what happens to them",
                       "parameters": [{"name": "transfer_to", "in": "query", "schema": {"type": "string"}},
                                      {"name": "delete_databases", "in": "query", "schema": {"type": "boolean"}}],
                       "responses": {"204": {"description": "Deleted"}, **_errors(401, 403, 404, 409)}},
        },
        "/me": {"get": {"summary": "Your own account, with your capacity: allowance, what your databases take of "
                                   "it and use, and what is left",
                        "responses": {"200": _json("#/components/schemas/UserOf"), **_errors(401)}}},
        "/me/password": {"post": {
            "summary": "Change your own password",
            "requestBody": {"required": True, "content": {"application/json": {"schema": {
                "type": "object", "required": ["current_password", "new_password"],
                "properties": {"current_password": {"type": "string"}, "new_password": {"type": "string"}}}}}},
            "responses": {"204": {"description": "Changed"}, **_errors(400, 401, 422)}}},
        "/tokens/{token_id}": {
            "parameters": [{"name": "token_id", "in": "path", "required": True, "schema": {"type": "integer"}}],
            "delete": {"summary": "Revoke a token (yours; admins: any)",
                       "responses": {"204": {"description": "Revoked"}, **_errors(401, 404)}}},
        "/admin/audit": {"get": {
            "summary": "The audit log (admins): who, what, which object, when, from where, outcome",
            "parameters": [{"name": "actor", "in": "query", "schema": {"type": "string"}},
                           {"name": "object", "in": "query", "schema": {"type": "string"}}, *PAGE_QUERY],
            "responses": {"200": _page("events", {"$ref": "#/components/schemas/AuditEvent"}),
                          **_errors(400, 401, 403)}}},
        "/databases": {"get": {
            "summary": "Your databases (admins: all, filterable by owner and instance)",
            "parameters": [{"name": "owner", "in": "query", "schema": {"type": "string"}},
                           {"name": "instance", "in": "query", "schema": {"type": "string"}}, *PAGE_QUERY],
            "responses": {"200": _page("databases", {"$ref": "#/components/schemas/Database"}),
                          **_errors(400, 401)}}},
        "/instances/{instance}/databases": {
            "parameters": [{"name": "instance", "in": "path", "required": True, "schema": {"type": "string"}}],
            "get": {"summary": "Your databases on an instance (admins: all of them)", "parameters": PAGE_QUERY,
                    "responses": {"200": _page("databases", {"$ref": "#/components/schemas/Database"}),
                                  **_errors(400, 401, 404)}},
            "post": {"summary": "Create a database with its own login role; the password is in this answer only",
                     "requestBody": {"required": True, "content": {"application/json": {"schema": {
                         "type": "object", "required": ["name"], "additionalProperties": False,
                         "properties": {"name": {"type": "string", "pattern": "^[a-z][a-z0-9_]{0,62}$"},
                                        "quota_mb": {"type": "integer", "minimum": 1,
                                                     "description": "within what your storage allowance has left "
                                                                    "(422 says how much); without it, under an "
                                                                    "allowance: allowance / max_databases, or what "
                                                                    "is left if less"},
                                        "connection_limit": {"type": "integer", "minimum": 1},
                                        "parameters": {"type": "object", "description": "per-database settings "
                                                       "(planner, memory, timeout and client settings such as "
                                                       "work_mem, statement_timeout, search_path; never ones that "
                                                       "would undo the quota, e.g. default_transaction_read_only), "
                                                       "set before the answer; one refused value undoes the create "
                                                       "(422)",
                                                       "additionalProperties": {"type": ["string", "number"]}}}}}}},
                     "responses": {"201": {"description": "Created", "content": {"application/json": {"schema": {
                         "type": "object", "required": ["database"],
                         "properties": {"database": {"$ref": "#/components/schemas/Database"}}}}}},
                         **_errors(400, 401, 404, 409, 422, 503)}},
        },
        "/instances/{instance}/databases/{name}": {
            "parameters": [{"name": "instance", "in": "path", "required": True, "schema": {"type": "string"}},
                           {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}],
            "get": {"summary": "Show a database with its size and connections",
                    "responses": {"200": _json("#/components/schemas/Database"), **_errors(401, 404)}},
            "patch": {"summary": "Change quota_mb (within the owner's storage allowance, whoever asks; under one it "
                                 "cannot be null), connection_limit or parameters (the settings a database may "
                                 "change, as at create; null resets one); PostgreSQL's own message comes back as a "
                                 "422",
                      "requestBody": {"required": True, "content": {"application/json": {"schema": {
                          "type": "object", "additionalProperties": False,
                          "properties": {"quota_mb": {"type": ["integer", "null"]},
                                         "connection_limit": {"type": ["integer", "null"]},
                                         "parameters": {"type": "object"}}}}}},
                      "responses": {"200": _json("#/components/schemas/Database"),
                                    **_errors(400, 401, 404, 409, 422, 503)}},
            "delete": {"summary": "Drop the database and its role after ending its sessions. By default a job "
                                  "(database_delete) first takes a final dump (pg_dump custom format, kept for the "
                                  "grace period for a restore) and then drops it: 202 with the job; if the dump "
                                  "fails, nothing is dropped. final_dump=false drops it at once: 204",
                       "parameters": [{"name": "final_dump", "in": "query", "schema": {"type": "boolean",
                                                                                     "default": True}}],
                       "responses": {"202": _json("#/components/schemas/JobAccepted", "Accepted: the delete job"),
                                     "204": {"description": "Deleted (final_dump=false)"},
                                     **_errors(401, 404, 409, 503)}},
        },
        "/instances/{instance}/databases/{name}/dump": {
            "parameters": [{"name": "instance", "in": "path", "required": True, "schema": {"type": "string"}},
                           {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}],
            "post": {"summary": "Dump the database for download, as a job (database_dump): 202 at once with the job "
                                "(Location: its URL; its events arrive live). Once it succeeded, its result has "
                                "size_bytes, expires_at and download (GET /jobs/{job_id}/dump). One dump, delete or "
                                "restore at a time per database (409 naming the busy job)",
                     "responses": {"202": _json("#/components/schemas/JobAccepted", "Accepted: the dump job"),
                                   **_errors(400, 401, 404, 409)}},
        },
        "/instances/{instance}/databases/{name}/restore": {
            "parameters": [{"name": "instance", "in": "path", "required": True, "schema": {"type": "string"}},
                           {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}},
                           {"name": "clean", "in": "query", "description": "with an archive: drop the objects it "
                            "holds before creating them again", "schema": {"type": "boolean", "default": False}}],
            "post": {"summary": "Restore, as a job (database_restore): 202 at once with the job. With a body (a "
                                "pg_dump custom-format archive, raw or as the multipart field 'file', up to "
                                "DUMP_UPLOAD_MAX_BYTES; 413 past it): into the existing database NAME (yours). "
                                "Without a body: a deleted database comes back from its final dump, created again "
                                "now with a new password (in the answer, shown once). The restore runs in one "
                                "transaction, as the database's own role: a failed or canceled one changes "
                                "nothing, and its job's error says so; a file that is not an archive is a 422",
                     "requestBody": {"required": False, "content": {
                         "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
                         "multipart/form-data": {"schema": {"type": "object", "properties": {
                             "file": {"type": "string", "format": "binary"}}}}}},
                     "responses": {"202": {"description": "Accepted: the restore job", "content": {
                         "application/json": {"schema": {
                             "type": "object", "required": ["job"],
                             "properties": {"job": {"$ref": "#/components/schemas/JobRef"},
                                            "database": {"$ref": "#/components/schemas/Database",
                                                         "description": "a deleted database's restore: created "
                                                                        "again, with its new password"}}}}}},
                         **_errors(400, 401, 404, 409, 413, 422, 503)}},
        },
        "/instances/{instance}/databases/{name}/password": {
            "parameters": [{"name": "instance", "in": "path", "required": True, "schema": {"type": "string"}},
                           {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}],
            "post": {"summary": "Set a new password (generated when none is given); the old one stops at once",
                     "requestBody": {"content": {"application/json": {"schema": {
                         "type": "object", "properties": {"password": {"type": "string"}}}}}},
                     "responses": {"200": {"description": "OK"}, **_errors(400, 401, 404, 409, 422, 503)}},
        },
        "/instances/{instance}/databases/{name}/metrics": {
            "parameters": [{"name": "instance", "in": "path", "required": True, "schema": {"type": "string"}},
                           {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}},
                           {"name": "from", "in": "query", "schema": {"type": "string", "format": "date-time"}},
                           {"name": "to", "in": "query", "schema": {"type": "string", "format": "date-time"}}],
            "get": {"summary": "A database's samples in a period (default: the last hour): size, connections, "
                               "tps, cache hit ratio, quota use, tuples written, deadlocks, temp bytes",
                    "responses": {"200": {"description": "OK"}, **_errors(401, 404, 422)}}},
        "/instances/{name}/metrics": {
            "parameters": [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}},
                           {"name": "from", "in": "query", "schema": {"type": "string", "format": "date-time"}},
                           {"name": "to", "in": "query", "schema": {"type": "string", "format": "date-time"}}],
            "get": {"summary": "An instance's samples (admins): connections, WAL rate, lag per standby, timeline, "
                               "member states, container CPU, memory and volume use",
                    "responses": {"200": {"description": "OK"}, **_errors(401, 403, 404, 422)}}},
        "/instances/{instance}/databases/{name}/report": {
            "parameters": [{"name": "instance", "in": "path", "required": True, "schema": {"type": "string"}},
                           {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}},
                           *REPORT_QUERY],
            "get": {"summary": "A database's report for a period (default: the last hour): size growth, peak and "
                               "mean connections, mean and peak TPS, cache hit ratio, quota use, failovers and "
                               "availability; html and pdf carry charts, csv has one row per sample",
                    "responses": {"200": REPORT_CONTENT, **_errors(401, 404, 422)}}},
        "/instances/{name}/report": {
            "parameters": [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}},
                           *REPORT_QUERY],
            "get": {"summary": "An instance's report for a period (admins): connections, WAL rate, replication lag, "
                               "availability, failovers",
                    "responses": {"200": REPORT_CONTENT, **_errors(401, 403, 404, 422)}}},
        "/alerts": {"get": {"summary": "Alerts firing now (admins: all; a user: those of their own databases): "
                                       "quota at 80%, replication lag over ALERT_LAG_BYTES or ALERT_LAG_SECONDS, "
                                       "instance degraded, volume over 85% full",
                            "parameters": PAGE_QUERY,
                            "responses": {"200": _page("alerts", {"$ref": "#/components/schemas/Alert"}),
                                          **_errors(400, 401)}}},
        "/admin/usage": {"get": {"summary": "The newest sample of every instance and database (admins)",
                                 "responses": {"200": {"description": "OK"}, **_errors(401, 403)}}},
        "/metrics": {"get": {"summary": "Prometheus text format (admins); also served at /metrics",
                             "responses": {"200": {"description": "OK", "content": {"text/plain": {}}},
                                           **_errors(401, 403)}}},
        "/openapi.json": {"get": {"summary": "This document", "security": [],
                                  "responses": {"200": {"description": "OK"}}}},
    },
}


@bp.get("/openapi.json")
def openapi_document():
    return SPEC
