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


def test_every_list_documents_its_pages_and_answers_fit(live, spec):
    """Every GET that answers a list takes limit and offset and answers next (tests/api/test_front_door.py checks
    the server pages them all)."""
    from tests.api.test_front_door import LISTS

    for path, key in LISTS:
        doc = re.sub(r"^/api/v1", "", path).replace("/main/", "/{name}/")
        doc = doc if doc in spec["paths"] else doc.replace("{name}", "{instance}")
        op = spec["paths"][doc]["get"]
        params = {p["name"]: p for p in op.get("parameters", []) + spec["paths"][doc].get("parameters", [])}
        assert params["limit"]["schema"]["maximum"] == 1000 and params["offset"]["schema"]["minimum"] == 0, doc
        schema = op["responses"]["200"]["content"]["application/json"]["schema"]
        assert {key, "limit", "offset", "next"} <= set(schema["required"]), doc
    live.admin.post("/api/v1/instances", json={"name": "main"})
    registry = Registry().with_resource("urn:spec", Resource.from_contents(spec, default_specification=DRAFT202012))
    for api, path in [(live.admin, "/instances"), (live.alice, "/instances"), (live.admin, "/jobs?limit=1"),
                      (live.admin, "/users?limit=1"), (live.alice, "/tokens"), (live.admin, "/admin/audit?limit=2")]:
        schema = spec["paths"][path.split("?")[0]]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
        jsonschema.Draft202012Validator(_rebase(schema), registry=registry).validate(api.get("/api/v1" + path).json())
    validator(spec, "#/components/schemas/InstanceSummary").validate(live.alice.get("/api/v1/instances/main").json())
    access = live.admin.put("/api/v1/instances/main/access", json={"users": ["alice"]}).json()
    validator(spec, "#/components/schemas/InstanceAccessOf").validate(access)


def _rebase(schema):
    """Point the schema's #/ references at the registered document."""
    if isinstance(schema, dict):
        return {k: ("urn:spec" + v if k == "$ref" and v.startswith("#/") else _rebase(v)) for k, v in schema.items()}
    if isinstance(schema, list):
        return [_rebase(x) for x in schema]
    return schema


def test_document_is_valid_openapi(spec):
    from openapi_spec_validator import validate

    validate(spec)


def test_every_answer_has_a_schema(spec):
    """No bare "OK": every answer but a 204 says what its body is."""
    for path, item in spec["paths"].items():
        for method, op in item.items():
            if method == "parameters":
                continue
            for status, resp in op["responses"].items():
                if status == "204" or "$ref" in resp:
                    continue
                assert resp.get("content") and all("schema" in c for c in resp["content"].values()), \
                    (method, path, status)


def test_limits_in_the_document_are_the_schema_constants(spec):
    """Each limit is written once (webapp/schemas/limits.py): the document states exactly those."""
    from webapp.schemas import limits as L

    schemas = spec["components"]["schemas"]

    def prop(schema, name):
        p = schemas[schema]["properties"][name]
        return next((alt for alt in p.get("anyOf", []) if alt.get("type") != "null"), p)

    for schema in ("InstanceCreate", "InstanceChange"):
        assert (prop(schema, "cpus")["minimum"], prop(schema, "cpus")["maximum"]) == (L.CPUS_MIN, L.CPUS_MAX)
        assert (prop(schema, "memory_mb")["minimum"], prop(schema, "memory_mb")["maximum"]) == \
            (L.MEMORY_MB_MIN, L.MEMORY_MB_MAX)
        assert (prop(schema, "storage_gb")["minimum"], prop(schema, "storage_gb")["maximum"]) == \
            (L.STORAGE_GB_MIN, L.STORAGE_GB_MAX)
    create = schemas["InstanceCreate"]
    assert (prop("InstanceCreate", "replicas")["minimum"], prop("InstanceCreate", "replicas")["maximum"]) == \
        (L.REPLICAS_MIN, L.REPLICAS_MAX)
    password = prop("InstanceCreate", "admin_password")
    assert (password["minLength"], password["maxLength"]) == (L.ADMIN_PASSWORD_MIN, L.ADMIN_PASSWORD_MAX)
    assert create["required"] == ["name"] and create["additionalProperties"] is False
    assert create["properties"]["admin_database"]["default"] == L.ADMIN_DATABASE_DEFAULT
    # the name pattern is the whole rule: 3 to 40 characters, a letter first, no hyphen last
    pattern = re.compile(create["properties"]["name"]["pattern"])
    for name, ok in (("main", True), ("a-b", True), ("a" * 40, True), ("ab", False), ("a" * 41, False),
                     ("main-", False), ("1ab", False), ("Main", False)):
        assert bool(pattern.match(name)) is ok is (L.instance_name_problem(name) is None), name
    assert schemas["Instance"]["properties"]["name"]["pattern"] == L.INSTANCE_NAME_PATTERN
    assert schemas["DatabaseCreate"]["properties"]["name"]["pattern"] == L.DB_NAME_PATTERN


def test_a_value_past_a_limit_is_refused_as_the_document_says(live, spec):
    """The API checks the same numbers the document states, and names the field."""
    from webapp.schemas import limits as L

    for field, bad, message in (("cpus", L.CPUS_MAX + 1, f"between {L.CPUS_MIN} and {L.CPUS_MAX}"),
                                ("memory_mb", L.MEMORY_MB_MIN - 1, f"between {L.MEMORY_MB_MIN} and"),
                                ("storage_gb", L.STORAGE_GB_MAX + 1, f"and {L.STORAGE_GB_MAX}"),
                                ("name", "main-", "must not end with a hyphen")):
        r = live.admin.post("/api/v1/instances", json={"name": "main", field: bad})
        assert r.status_code == 422, (field, r.text)
        err = r.json()["error"]
        assert err["details"]["field"] == field and message in err["message"], err
        validator(spec, "#/components/schemas/Error").validate(r.json())


@pytest.mark.parametrize("body", [
    {"name": "Main"}, {"name": "trailing-"}, {"name": 42}, {"name": "okname", "admin_database": "App"},
    {"name": "okname", "admin_database": 7}, {"name": "okname", "synchronous": "yes"},
    {"name": "okname", "synchronous": None}, {"name": "okname", "replicas": 4}, {"name": "okname", "replicas": True},
    {"name": "okname", "storage_gb": 65537}, {"name": "okname", "storage_gb": 1.5},
    {"name": "okname", "memory_mb": 255}, {"name": "okname", "cpus": 0.05}, {"name": "okname", "cpus": "2"},
    {"name": "okname", "admin_password": "short"}, {"name": "okname", "admin_password": 123456789012},
])
def test_the_schema_and_the_service_refuse_alike(live, body):
    """The API checks a create body with its model (webapp/schemas); the CLI and the website reach the service,
    which checks the same limits: both refuse the same values, in the same words, naming the same field."""
    from webapp.services import Invalid, audit
    from webapp.services import instances as isvc

    err = error_of(live.admin.post("/api/v1/instances", json=body), 422)
    with pytest.raises(Invalid) as refused:
        isvc.create(None, None, None, actor=audit.Actor("admin", True), **body)  # refused before it needs a session
    assert (err["message"], err["details"]) == (refused.value.message, refused.value.details)


def error_of(r, status):
    assert r.status_code == status, (r.status_code, r.text)
    return r.json()["error"]
