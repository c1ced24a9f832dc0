"""The OpenAPI 3 document, served at /api/v1/openapi.json. tests/api/test_openapi.py checks that it and the
routes agree, and validates live responses against its schemas."""
from __future__ import annotations

from webapp.api import bp

_ERR = {"$ref": "#/components/responses/Error"}


def _json(schema_ref: str, desc: str = "OK") -> dict:
    return {"description": desc, "content": {"application/json": {"schema": {"$ref": schema_ref}}}}


def _errors(*codes) -> dict:
    return {str(c): _ERR for c in codes}


NAME = {"type": "string", "pattern": "^[a-z][a-z0-9-]{2,39}$"}
MEMBER = {
    "type": "object",
    "required": ["host", "port", "container", "state"],
    "properties": {"name": {"type": "string"}, "host": {"type": "string"}, "address": {"type": "string"},
                   "port": {"type": "integer"}, "container": {"type": "string"}, "state": {"type": "string"},
                   "timeline": {"type": ["integer", "null"]}},
}
SPEC = {
    "openapi": "3.1.0",
    "info": {"title": "pgaas API", "version": "1",
             "description": "PostgreSQL as a service. Authenticate with `Authorization: Bearer <token>` "
                            "from POST /api/v1/tokens. Errors are {error: {code, message}}."},
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
                                   "result": {"type": "object"}, "url": {"type": "string"},
                                   "events": {"type": "array", "items": {"$ref": "#/components/schemas/JobEvent"}}}},
            "Member": MEMBER,
            "Replica": {"allOf": [MEMBER, {"type": "object", "properties": {
                "lag_bytes": {"type": ["integer", "null"]}, "sync_state": {"enum": ["sync", "async", None]}}}]},
            "Instance": {
                "type": "object",
                "required": ["name", "status", "primary", "replicas", "same_host", "uri", "readonly_uri",
                             "created_at"],
                "properties": {
                    "name": NAME,
                    "status": {"enum": ["creating", "available", "degraded", "failed", "deleting"]},
                    "status_reason": {"type": "string"}, "provider": {"type": "string"},
                    "synchronous": {"type": "boolean"}, "replicas_wanted": {"type": "integer"},
                    "storage_gb": {"type": ["integer", "null"]}, "cpus": {"type": ["number", "null"]},
                    "memory_mb": {"type": ["integer", "null"]},
                    "primary": {"oneOf": [{"$ref": "#/components/schemas/Member"}, {"type": "null"}]},
                    "replicas": {"type": "array", "items": {"$ref": "#/components/schemas/Replica"}},
                    "same_host": {"type": "boolean"}, "placement_note": {"type": "string"},
                    "admin_user": {"type": "string"},
                    "uri": {"type": "string", "description": "libpq multi-host URI, target_session_attrs=read-write; "
                                                             "no password"},
                    "readonly_uri": {"type": "string"},
                    "metadata": {"type": "object", "description": "admins only: deploy results and host facts"},
                    "created_at": {"type": "string"}, "updated_at": {"type": "string"}, "url": {"type": "string"},
                    "active_job": {"oneOf": [{"$ref": "#/components/schemas/JobRef"}, {"type": "null"}]},
                },
            },
            "InstanceCreate": {
                "type": "object", "required": ["name"], "additionalProperties": False,
                "properties": {"name": NAME, "synchronous": {"type": "boolean", "default": False},
                               "replicas": {"type": "integer", "minimum": 1, "maximum": 3, "default": 1},
                               "storage_gb": {"type": "integer", "minimum": 1},
                               "cpus": {"type": "number", "minimum": 0.1},
                               "memory_mb": {"type": "integer", "minimum": 256},
                               "admin_password": {"type": "string", "minLength": 12, "maxLength": 128}}},
            "InstanceCreated": {
                "type": "object", "required": ["instance", "job", "admin_user", "admin_password"],
                "properties": {"instance": {"$ref": "#/components/schemas/Instance"},
                               "job": {"$ref": "#/components/schemas/JobRef"}, "admin_user": {"type": "string"},
                               "admin_password": {"type": "string", "description": "shown in this answer only"}}},
            "JobAccepted": {"type": "object", "required": ["job"],
                            "properties": {"job": {"$ref": "#/components/schemas/JobRef"}}},
        },
    },
    "security": [{"bearer": []}],
    "paths": {
        "/tokens": {"post": {
            "summary": "Exchange a username and password for an API token", "security": [],
            "requestBody": {"required": True, "content": {"application/json": {"schema": {
                "type": "object", "required": ["username", "password"],
                "properties": {"username": {"type": "string"}, "password": {"type": "string"},
                               "name": {"type": "string"}}}}}},
            "responses": {"201": {"description": "Created", "content": {"application/json": {"schema": {
                "type": "object", "required": ["token"], "properties": {"token": {"type": "string"}}}}}},
                **_errors(400, 401, 422)}}},
        "/instances": {
            "get": {"summary": "List instances",
                    "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": {
                        "type": "object", "required": ["instances"], "properties": {"instances": {
                            "type": "array", "items": {"$ref": "#/components/schemas/Instance"}}}}}}},
                        **_errors(401)}},
            "post": {"summary": "Create an instance (admins): a job deploys etcd and a Patroni primary/standby pair",
                     "requestBody": {"required": True, "content": {"application/json": {
                         "schema": {"$ref": "#/components/schemas/InstanceCreate"}}}},
                     "responses": {"202": _json("#/components/schemas/InstanceCreated", "Accepted"),
                                   **_errors(400, 401, 403, 409, 422)}},
        },
        "/instances/{name}": {
            "parameters": [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}],
            "get": {"summary": "Show an instance with its live Patroni state",
                    "responses": {"200": _json("#/components/schemas/Instance"), **_errors(401, 404)}},
            "delete": {"summary": "Delete an instance (admins): a job removes its containers, volumes and network",
                       "responses": {"202": _json("#/components/schemas/JobAccepted", "Accepted"),
                                     **_errors(401, 403, 404, 409)}},
        },
        "/instances/{name}/retry": {
            "parameters": [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}],
            "post": {"summary": "Retry the failed create or delete of an instance (admins)",
                     "responses": {"202": _json("#/components/schemas/JobAccepted", "Accepted"),
                                   **_errors(400, 401, 403, 404, 409)}},
        },
        "/jobs": {"get": {
            "summary": "List jobs (admins: all; others: their own)",
            "parameters": [{"name": "instance", "in": "query", "schema": {"type": "string"}}],
            "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": {
                "type": "object", "required": ["jobs"], "properties": {"jobs": {
                    "type": "array", "items": {"$ref": "#/components/schemas/Job"}}}}}}}, **_errors(401)}}},
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
        "/openapi.json": {"get": {"summary": "This document", "security": [],
                                  "responses": {"200": {"description": "OK"}}}},
    },
}


@bp.get("/openapi.json")
def openapi_document():
    return SPEC
