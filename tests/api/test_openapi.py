"""The OpenAPI document matches the server: same routes and methods, and live answers fit its schemas."""
import re

import jsonschema
import pytest
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012


def spec_routes(spec):
    out = set()
    for path, item in spec["paths"].items():
        for method in item:
            if method in ("get", "post", "put", "patch", "delete"):
                out.add((method.upper(), "/api/v1" + re.sub(r"\{[^}]+\}", "{}", path)))
    return out


def app_routes(app):
    out = set()
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1"):
            continue
        for m in rule.methods - {"HEAD", "OPTIONS"}:
            out.add((m, re.sub(r"<[^>]+>", "{}", rule.rule)))
    return out


@pytest.fixture
def spec(live):
    r = live.anon.get("/api/v1/openapi.json")
    assert r.status_code == 200
    return r.json()


def validator(spec, ref):
    registry = Registry().with_resource("urn:spec", Resource.from_contents(spec, default_specification=DRAFT202012))
    schema = {"$ref": "urn:spec" + ref}
    return jsonschema.Draft202012Validator(schema, registry=registry)


def test_spec_and_routes_agree(live, spec):
    assert spec["openapi"].startswith("3.")
    assert spec_routes(spec) == app_routes(live.app)


def test_responses_fit_the_schemas(live, spec):
    created = live.admin.post("/api/v1/instances", json={"name": "main"})
    validator(spec, "#/components/schemas/InstanceCreated").validate(created.json())
    validator(spec, "#/components/schemas/Instance").validate(live.admin.get("/api/v1/instances/main").json())
    job = live.admin.get(f"/api/v1/jobs/{created.json()['job']['id']}").json()
    validator(spec, "#/components/schemas/Job").validate(job)
    for err in (live.anon.get("/api/v1/instances"), live.admin.get("/api/v1/instances/none"),
                live.admin.post("/api/v1/instances", json={"name": "X"})):
        validator(spec, "#/components/schemas/Error").validate(err.json())
    # every documented status of an operation is one the server can send: spot-check the create's
    assert {"202", "400", "401", "403", "409", "422"} <= set(spec["paths"]["/instances"]["post"]["responses"])
