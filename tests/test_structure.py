"""The shape issue 13 set, held by the code itself: no file in webapp/ (migrations aside) passes 450 lines, no module
imports another module's private (_underscore) names, and no import runs up the layers."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

WEBAPP = Path(__file__).resolve().parent.parent / "webapp"
SOURCES = sorted(p for p in WEBAPP.rglob("*.py") if "migrations" not in p.parts)
# (importer prefix, imported prefix): the arrows that would run up the layers
UPWARD = [("webapp.ui", "webapp.api"), ("webapp.api", "webapp.ui"), ("webapp.providers", "webapp.services"),
          ("webapp.providers", "webapp.api"), ("webapp.providers", "webapp.ui"), ("webapp.services", "webapp.api"),
          ("webapp.services", "webapp.ui"), ("webapp.services", "flask"), ("webapp.jobs", "webapp.services"),
          ("webapp.jobs", "flask"), ("webapp.store", "webapp.services"), ("webapp.schemas", "webapp.services"),
          ("webapp.schemas", "flask"), ("webapp.hostregistry", "webapp.services"),
          ("webapp.exceptions", "webapp.services")]


def module_name(path: Path) -> str:
    parts = path.relative_to(WEBAPP.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path):
    """(imported module, imported name or None, line) of every import in the file."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield a.name, None, node.lineno
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for a in node.names:
                yield node.module, a.name, node.lineno


def test_the_checks_see_the_tree():
    assert len(SOURCES) > 60 and any(module_name(p) == "webapp.services.handlers.registry" for p in SOURCES)


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(WEBAPP.parent)))
def test_no_webapp_file_passes_450_lines(path):
    assert len(path.read_text().splitlines()) <= 450


def test_no_module_imports_another_modules_private_names():
    found = [f"{module_name(p)}:{line} imports {mod}.{name}" for p in SOURCES for mod, name, line in imports(p)
             if mod.startswith("webapp") and name and name.startswith("_") and not name.startswith("__")
             and mod != module_name(p)]
    assert found == []


def test_no_import_runs_up_the_layers():
    found = [f"{module_name(p)}:{line} imports {mod}" for p in SOURCES for mod, _, line in imports(p)
             for low, high in UPWARD
             if (module_name(p) + ".").startswith(low + ".") and (mod + ".").startswith(high + ".")]
    assert found == []


def test_no_service_module_imports_a_job_handler():
    """Handlers call services, never the reverse: the registry is built above both (webapp/extensions.py)."""
    found = [f"{module_name(p)}:{line}" for p in SOURCES for mod, _, line in imports(p)
             if module_name(p).startswith("webapp.services.") and not module_name(p).startswith(
                 "webapp.services.handlers") and mod.startswith("webapp.services.handlers")]
    assert found == []


def test_the_playbooks_limits_are_the_apis():
    """Operators run the playbooks without the control plane, so the plays check their inputs themselves; what
    they check must be what the API checks (webapp/schemas/limits.py), wherever a play or role spells it."""
    import re

    import yaml

    from webapp.schemas import limits as L

    repo = WEBAPP.parent
    spec = yaml.safe_load((repo / "playbooks" / "vars" / "instance_argument_spec.yml").read_text())
    assert spec["pgaas_instance_name_pattern"] == L.INSTANCE_NAME_PATTERN
    assert spec["pgaas_instance_limits"] == {"cpus": [L.CPUS_MIN, L.CPUS_MAX],
                                             "memory_mb": [L.MEMORY_MB_MIN, L.MEMORY_MB_MAX],
                                             "storage_gb": [L.STORAGE_GB_MIN, L.STORAGE_GB_MAX]}
    spelled = {m for p in [*repo.glob("playbooks/*.yml"), *repo.glob("roles/*/tasks/*.yml")]
               for m in re.findall(r"instance_name is match\('([^']+)'\)", p.read_text())}
    assert spelled == {L.INSTANCE_NAME_PATTERN}
