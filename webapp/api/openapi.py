"""The OpenAPI 3 document, served at /api/v1/openapi.json: the paths are a table (openapi_paths.py), every request
and response body is a model of webapp.schemas, described by its JSON Schema. tests/api/test_openapi.py checks that it and the routes
agree, validates it and validates live responses against its schemas."""
from __future__ import annotations

from functools import cache

from pydantic.json_schema import models_json_schema

from webapp.api import bp
from webapp.api.openapi_paths import PATHS, REF, ref
from webapp.api.pagination import DEFAULT_LIMIT, MAX_LIMIT
from webapp.schemas import backups as bk
from webapp.schemas import requests as rq
from webapp.schemas import responses as rs
from webapp.schemas import statements as st

REQUESTS = [rq.InstanceCreate, rq.InstanceChange, rq.InstanceAccessChange, rq.CertificateRenewal, rq.Switchover,
            rq.Failover, rq.Rebuild, rq.TokenCreate, rq.UserCreate, rq.AllowanceChange, rq.PasswordChange,
            rq.DatabaseCreate, rq.DatabaseChange, rq.DatabasePassword, rq.HostCreate, rq.HostKey, rq.InstanceAdopt,
            *bk.REQUESTS]
RESPONSES = [rs.Error, rs.JobAccepted, rs.Job, rs.Instance, rs.InstanceSummary, rs.InstanceCreated,
             rs.InstanceAccessOf, rs.InstanceSettings, rs.PrimaryChange, rs.UserOf, rs.Token, rs.TokenCreated,
             rs.Database, rs.DatabaseOf, rs.DatabaseRestore, rs.DatabasePasswordSet, rs.AuditEvent, rs.Alert,
             rs.Host, rs.Metrics, rs.Report, rs.Usage, rs.InstanceAdopted, rs.InstanceInventory,
             *bk.RESPONSES, *st.RESPONSES]


def components() -> dict:
    """Every model's JSON Schema, the nested ones too, under #/components/schemas."""
    _, top = models_json_schema([(m, "validation") for m in REQUESTS] + [(m, "serialization") for m in RESPONSES],
                                ref_template=REF)
    return top["$defs"]


@cache
def document() -> dict:
    return {
        "openapi": "3.1.0",
        "info": {"title": "pgaas API", "version": "1",
                 "description": "PostgreSQL as a service. Authenticate with `Authorization: Bearer <token>` from "
                                "POST /api/v1/tokens (it expires, after TOKEN_DAYS by default; a password change "
                                "revokes it; a token of scope read is refused (403) on every method but GET). "
                                "Errors are {error: {code, message}}; a body over MAX_CONTENT_LENGTH is refused "
                                f"(413). Lists come in pages: ?limit= (default {DEFAULT_LIMIT}, at most "
                                f"{MAX_LIMIT}) and ?offset=, with a next link."},
        "servers": [{"url": "/api/v1"}],
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
                       "responses": {"Error": {"description": "Error", "content": {
                           "application/json": {"schema": ref(rs.Error)}}}},
                       "schemas": components()},
        "security": [{"bearer": []}],
        "paths": PATHS,
    }


@bp.get("/openapi.json")
def openapi_document():
    return document()
