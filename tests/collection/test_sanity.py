"""The pgaas.pgaas collection builds with `ansible-galaxy collection build` and passes `ansible-test sanity` (the
documentation and argument-spec checks, pep8, yamllint, compile, import). ansible-test makes a virtualenv per test
under ~/.ansible/test/venv and bootstraps pip in each with a script from ci-files.testing.ansible.com; here HOME is
a directory of its own (so nothing of the shared .venv or the user's ~/.ansible changes) whose cache holds
tests/collection/get_pip.py in that script's place. The first run installs each test's pinned requirements from
the package index (about 2-3 minutes); later runs reuse the virtualenvs (about 20 s)."""
from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
from pathlib import Path

from tests.conftest import REPO

COLLECTION = REPO / "collections" / "ansible_collections" / "pgaas" / "pgaas"
BIN = Path(os.environ.get("VIRTUAL_ENV") or REPO / ".venv") / "bin"
HOME = Path(os.environ.get("PGAAS_ANSIBLE_TEST_HOME", Path.home() / ".cache" / "pgaas-ansible-test"))
GET_PIP = "get_pip_24_2.py"  # the name ansible-test looks for (its pinned pip, 24.2 in ansible-core 2.19)
TESTS = ["validate-modules", "ansible-doc", "pep8", "yamllint", "compile", "import", "runtime-metadata", "shebang",
         "no-assert", "use-argspec-type-path", "replace-urlopen"]


def test_collection_builds(tmp_path):
    out = subprocess.run([str(BIN / "ansible-galaxy"), "collection", "build", str(COLLECTION), "--output-path",
                          str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    with tarfile.open(tmp_path / "pgaas-pgaas-0.1.0.tar.gz") as tar:
        names = set(tar.getnames())
    for module in ("instance", "instance_info", "database", "database_info", "user"):
        assert f"plugins/modules/{module}.py" in names
    assert {"plugins/module_utils/api.py", "meta/runtime.yml", "README.md", "MANIFEST.json"} <= names
    assert not [n for n in names if n.startswith("tests/output")]


def test_ansible_test_sanity():
    cache = HOME / ".ansible" / "test" / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(REPO / "tests" / "collection" / "get_pip.py", cache / GET_PIP)
    env = {**os.environ, "HOME": str(HOME), "PATH": f"{BIN}:{os.environ['PATH']}"}
    args = [str(BIN / "ansible-test"), "sanity", "--python", "3.11", "--color", "no"]
    for t in TESTS:
        args += ["--test", t]
    out = subprocess.run(args, cwd=COLLECTION, env=env, capture_output=True, text=True, timeout=540)
    assert out.returncode == 0, out.stdout[-5000:] + out.stderr[-5000:]
    for t in TESTS:
        assert f'Running sanity test "{t}"' in out.stdout + out.stderr, t
