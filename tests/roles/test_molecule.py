"""Every role's molecule scenario (roles/<role>/molecule/<scenario>/): `molecule test` converges it against this
machine with real podman containers, reruns it for idempotence, verifies it and removes what it made. Through pytest
so that the per-test timeout applies and CI reports each scenario as a test.

Slow (real containers): run one with `pytest tests/roles/test_molecule.py -k etcd`.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BIN_DIR = Path(sys.executable).parent
SCENARIOS = sorted(p.parent for p in REPO.glob("roles/*/molecule/*/molecule.yml"))

pytestmark = pytest.mark.slow


def test_every_role_has_a_scenario():
    roles = {p.name for p in (REPO / "roles").iterdir() if (p / "tasks").is_dir()}
    assert roles == {s.parents[1].name for s in SCENARIOS}


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: f"{s.parents[1].name}/{s.name}")
def test_molecule_scenario(scenario: Path):
    env = dict(os.environ)
    env["PATH"] = str(BIN_DIR) + os.pathsep + env.get("PATH", "")
    env["CONTAINERS_CONF"] = str(REPO / "etc" / "containers.conf")
    env["ANSIBLE_FORCE_COLOR"] = env["PY_COLORS"] = "0"
    started = time.monotonic()
    out = subprocess.run(
        [str(BIN_DIR / "molecule"), "test", "--scenario-name", scenario.name],
        cwd=scenario.parents[1], env=env, capture_output=True, text=True,
    )
    print(f"{scenario.parents[1].name}/{scenario.name}: {time.monotonic() - started:.1f} s")
    assert out.returncode == 0, out.stdout[-20000:] + out.stderr[-5000:]
