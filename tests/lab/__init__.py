"""A lab of VM-like hosts on this machine, for tests: test equipment, not part of the product.

Each lab host is a privileged podman container built from tests/lab/Containerfile (sshd, podman with runc,
python3, sudo), with its own static address on a project podman network named after the lab's prefix. Ansible
reaches a host over real SSH as user ``lab`` (passwordless sudo) with a key pair generated for the lab. Stopping a
host or cutting it from the network is a host failure; its disk (the container and its storage volume) survives
a stop, as a VM's would.

    lab = Lab("lab-ssh")
    hosts = lab.create(3)          # [LabHost(name, address, user, key_path, port)]
    lab.stop(hosts[0]); lab.start(hosts[0])
    lab.disconnect(hosts[1]); lab.reconnect(hosts[1])
    lab.destroy()                  # containers, volumes, network, key pair: everything with the prefix

Nested podman: each host has its own image store on a volume. With ``shared_images=True`` (the default) the
outer store (/var/lib/containers/storage) is also mounted read-only as an ``additionalimagestores`` entry, so the
PostgreSQL image is there at once without a copy; with ``shared_images=False`` a host starts empty and the image
has to reach it the way it reaches a real machine (registry or archive over SSH).
"""
from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
LAB_IMAGE = "localhost/pgaas-lab:bookworm"
LAB_USER = "lab"
OUTER_STORE = "/var/lib/containers/storage"
SHARED_STORE_MOUNT = "/var/lib/lab-images"
_IMAGE_FILES = ("Containerfile", "containers.conf", "sshd_lab.conf", "entrypoint.sh")


@dataclass(frozen=True)
class LabHost:
    name: str       # container name, also the host name inside
    address: str    # static address on the lab network, reachable from this machine
    user: str       # SSH login user (passwordless sudo)
    key_path: str   # private key file (0600) of the lab's key pair
    port: int = 22


def _podman(*args: str, check: bool = True, input: bytes | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.setdefault("CONTAINERS_CONF", str(REPO / "etc" / "containers.conf"))
    proc = subprocess.run(["podman", *args], capture_output=True, input=input, env=env, timeout=timeout)
    if check and proc.returncode != 0:
        raise RuntimeError(f"podman {' '.join(args)} failed ({proc.returncode}): {proc.stderr.decode(errors='replace')}")
    return proc


def image_hash() -> str:
    h = hashlib.sha256()
    for f in _IMAGE_FILES:
        h.update(f.encode() + b"\0" + (HERE / f).read_bytes() + b"\0")
    return h.hexdigest()[:16]


def ensure_image(image: str = LAB_IMAGE) -> str:
    """Build the lab image unless an image built from the same files exists (offline: FROM pgaas-base, apt)."""
    want = image_hash()
    got = _podman("image", "inspect", "--format", '{{ index .Labels "pgaas.lab.hash" }}', image, check=False)
    if got.returncode == 0 and got.stdout.decode().strip() == want:
        return image
    _podman("build", "--label", f"pgaas.lab.hash={want}", "-t", image, "-f", str(HERE / "Containerfile"), str(HERE),
            timeout=1200)
    return image


class Lab:
    def __init__(self, prefix: str = "lab", image: str = LAB_IMAGE, shared_images: bool = True,
                 state_dir: str | os.PathLike | None = None):
        if not prefix.startswith("lab-") and prefix != "lab":
            raise ValueError("a lab prefix starts with 'lab-' (names on this machine are shared)")
        self.prefix = prefix
        self.network = prefix
        self.image = image
        self.shared_images = shared_images
        self.state_dir = Path(state_dir or tempfile.mkdtemp(prefix=f"pgaas-{prefix}-"))
        self.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.key_path = self.state_dir / "id_ed25519"
        self.hosts: list[LabHost] = []

    # -- life cycle ----------------------------------------------------------------------------------------
    def create(self, n: int) -> list[LabHost]:
        """Start n hosts (after removing leftovers of an earlier lab with this prefix); wait until SSH answers."""
        ensure_image(self.image)
        self.destroy(keep_state=True)
        self._keypair()
        _podman("network", "create", "--label", f"pgaas.lab={self.prefix}", self.network)
        subnet = ipaddress.ip_network(self._subnet())
        base = int(subnet.network_address)
        (self.state_dir / "authorized_keys").write_text(self.key_path.with_suffix(".pub").read_text())
        if self.shared_images:
            (self.state_dir / "storage.conf").write_text(
                '[storage]\ndriver = "overlay"\nrunroot = "/run/containers/storage"\n'
                'graphroot = "/var/lib/containers/storage"\n\n[storage.options]\n'
                f'additionalimagestores = ["{SHARED_STORE_MOUNT}"]\n')
        hosts = []
        for i in range(n):
            name = f"{self.prefix}-{i}"
            address = str(ipaddress.ip_address(base + 10 + i))
            _podman("volume", "rm", "-f", f"{name}-storage", check=False)  # a leftover by this host's own name
            _podman("volume", "create", "--label", f"pgaas.lab={self.prefix}", f"{name}-storage")
            args = ["run", "-d", "--name", name, "--hostname", name, "--privileged",
                    "--label", f"pgaas.lab={self.prefix}", "--network", self.network, "--ip", address,
                    "--tmpfs", "/run:rw,exec,mode=0755",
                    "-v", f"{name}-storage:/var/lib/containers",
                    "-v", f"{self.state_dir / 'authorized_keys'}:/lab/authorized_keys:ro"]
            if self.shared_images:
                args += ["-v", f"{OUTER_STORE}:{SHARED_STORE_MOUNT}:ro",
                         "-v", f"{self.state_dir / 'storage.conf'}:/etc/containers/storage.conf:ro"]
            _podman(*args, self.image)
            hosts.append(LabHost(name, address, LAB_USER, str(self.key_path)))
        self.hosts = hosts
        for h in hosts:
            self.wait_ssh(h)
        return hosts

    def destroy(self, keep_state: bool = False) -> None:
        """Remove every container, volume and network of this prefix (also an earlier run's leftovers)."""
        names = _podman("ps", "-a", "--filter", f"label=pgaas.lab={self.prefix}", "--format", "{{.Names}}",
                        check=False).stdout.decode().split()
        if names:
            _podman("rm", "-f", "-t", "0", *names, check=False)
        # by label, not by name: "lab-x" must not take "lab-x-y"'s volumes
        vols = _podman("volume", "ls", "--filter", f"label=pgaas.lab={self.prefix}", "--format", "{{.Name}}",
                       check=False).stdout.decode().split()
        if vols:
            _podman("volume", "rm", "-f", *vols, check=False)
        if _podman("network", "exists", self.network, check=False).returncode == 0:
            _podman("network", "rm", "-f", self.network, check=False)
        self.hosts = []
        if not keep_state:
            shutil.rmtree(self.state_dir, ignore_errors=True)

    # -- failures ------------------------------------------------------------------------------------------
    def stop(self, host: LabHost) -> None:
        """Power off: every process of the host dies at once (no clean shutdown); its disk stays."""
        _podman("kill", host.name)
        _podman("wait", host.name, check=False)

    def start(self, host: LabHost) -> None:
        """Power on again with the same address; returns once SSH answers."""
        _podman("start", host.name)
        self.wait_ssh(host)

    def disconnect(self, host: LabHost) -> None:
        """Cut the host from the lab network (processes keep running, nobody reaches them)."""
        _podman("network", "disconnect", "-f", self.network, host.name)

    def reconnect(self, host: LabHost) -> None:
        _podman("network", "connect", "--ip", host.address, self.network, host.name)

    def running(self, host: LabHost) -> bool:
        out = _podman("inspect", "--format", "{{.State.Running}}", host.name, check=False)
        return out.returncode == 0 and out.stdout.decode().strip() == "true"

    # -- access --------------------------------------------------------------------------------------------
    def ssh_args(self, host: LabHost) -> list[str]:
        return ["ssh", "-i", host.key_path, "-p", str(host.port), "-o", "BatchMode=yes",
                "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
                "-o", "ConnectTimeout=5", f"{host.user}@{host.address}"]

    def ssh(self, host: LabHost, command: str, check: bool = True, timeout: float = 120,
            input: bytes | None = None) -> subprocess.CompletedProcess:
        """Run a shell command on the host over real SSH (as the lab user; prefix sudo for root)."""
        proc = subprocess.run([*self.ssh_args(host), command], capture_output=True, timeout=timeout, input=input)
        if check and proc.returncode != 0:
            raise RuntimeError(f"ssh {host.name} {command!r} failed ({proc.returncode}): "
                               f"{proc.stderr.decode(errors='replace')}")
        return proc

    def wait_ssh(self, host: LabHost, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with socket.create_connection((host.address, host.port), timeout=1) as s:
                    if s.recv(4).startswith(b"SSH-"):
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                logs = _podman("logs", "--tail", "20", host.name, check=False).stderr.decode(errors="replace")
                raise TimeoutError(f"lab host {host.name} ({host.address}) has no SSH after {timeout} s: {logs}")
            time.sleep(0.2)

    def inventory(self, hosts: list[LabHost] | None = None) -> dict:
        """An Ansible inventory (YAML/JSON shape) with the hosts in group ``lab``."""
        return {"all": {"children": {"lab": {"hosts": {
            h.name: {"ansible_host": h.address, "ansible_user": h.user, "ansible_port": h.port,
                     "ansible_ssh_private_key_file": h.key_path, "ansible_become": True,
                     "ansible_python_interpreter": "/usr/bin/python3",
                     "ansible_ssh_common_args": "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null"}
            for h in (self.hosts if hosts is None else hosts)}}}}}

    # -- internals -----------------------------------------------------------------------------------------
    def _keypair(self) -> None:
        if not self.key_path.exists():
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"pgaas {self.prefix}",
                            "-f", str(self.key_path)], check=True, capture_output=True)
        os.chmod(self.key_path, 0o600)

    def _subnet(self) -> str:
        info = json.loads(_podman("network", "inspect", self.network).stdout)
        return info[0]["subnets"][0]["subnet"]

    @property
    def gateway(self) -> str:
        """This machine's address on the lab network (how lab hosts reach the control plane)."""
        info = json.loads(_podman("network", "inspect", self.network).stdout)
        return info[0]["subnets"][0]["gateway"]


def lab_fixture(prefix: str, n: int, shared_images: bool = True):
    """A session-scoped pytest fixture yielding (lab, hosts); use as ``my_lab = lab_fixture("lab-x", 3)``."""
    import pytest

    @pytest.fixture(scope="session")
    def _fixture(request):
        from tests.conftest import release_after_last_use

        lab = Lab(prefix, shared_images=shared_images)
        close = release_after_last_use(request.fixturename, lab.destroy)  # not kept up for later directories
        try:
            hosts = lab.create(n)
            yield lab, hosts
        finally:
            close()

    return _fixture
