"""The systemd units pgaas ships pass `systemd-analyze verify`: the control plane's (etc/systemd, with the checkout's
paths put in) and the boot unit roles/container_engine writes on hosts that boot systemd (rendered with the role's
defaults). Nothing is installed or enabled; the machine running the tests needs no systemd as PID 1."""
import shutil
import subprocess
from pathlib import Path

import jinja2
import pytest
import yaml

from tests.conftest import REPO

pytestmark = pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")


def verify(unit_dir: Path, *units: str) -> None:
    r = subprocess.run(["systemd-analyze", "verify", *units], cwd=unit_dir, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0 and not r.stderr.strip(), r.stderr


def test_control_plane_units(tmp_path):
    for unit in ("pgaas.service", "pgaas-worker@.service"):
        text = (REPO / "etc" / "systemd" / unit).read_text()
        assert "/opt/pgaas" in text  # the documented default, adjusted at install
        (tmp_path / unit).write_text(text.replace("/opt/pgaas", str(REPO)))
    shutil.copy(tmp_path / "pgaas-worker@.service", tmp_path / "pgaas-worker@1.service")
    verify(tmp_path, "./pgaas.service", "./pgaas-worker@1.service")


def test_boot_unit_of_the_container_engine_role(tmp_path):
    role = REPO / "roles" / "container_engine"
    defaults = yaml.safe_load((role / "defaults" / "main.yml").read_text())
    text = jinja2.Template((role / "templates" / "pgaas-containers.service.j2").read_text()).render(
        ansible_managed="Ansible managed", **defaults)
    (tmp_path / "pgaas-containers.service").write_text(text)
    verify(tmp_path, "./pgaas-containers.service")
    assert "ExecStart=/usr/bin/podman start --all --filter label=pgaas.component=etcd\n" \
           "ExecStart=/usr/bin/podman start --all --filter label=pgaas.component=postgres\n" in text  # etcd first
