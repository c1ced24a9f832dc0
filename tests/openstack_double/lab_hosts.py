"""Servers of the OpenStack TEST DOUBLE backed by lab hosts (tests/lab): each created server boots a VM-like lab
host of its own (privileged podman container with sshd and podman) whose address becomes the server's address, with
the server's keypair as its login user's only authorized key (as cloud-init would put it). A Cinder volume is a
sparse file on this machine behind a loop device; attaching it makes the device node appear in the host as
/dev/vdX and /dev/disk/by-id/virtio-<first 20 characters of the volume id>, like a virtio disk. Extending it grows
the file and tells the loop device, so the guest sees the new size at once."""
from __future__ import annotations

import ipaddress
import os
import shutil
import subprocess
import threading
from pathlib import Path

from tests.lab import LAB_USER, OUTER_STORE, SHARED_STORE_MOUNT, Lab, _podman
from tests.openstack_double.server import BootedHost


class LabHosts:
    def __init__(self, prefix: str = "lab-os"):
        self.lab = Lab(prefix)
        self.lab.create(0)  # image, network and the lab's own key pair; no host yet
        self.subnet = ipaddress.ip_network(self.lab._subnet())
        self.dir = self.lab.state_dir / "double"
        self.dir.mkdir(mode=0o700, exist_ok=True)
        self._lock = threading.Lock()
        self._next = 0
        self._loops: dict[str, str] = {}   # volume id -> /dev/loopN while attached

    # -- servers --------------------------------------------------------------------------------------------
    def boot(self, server_name: str, public_key: str | None) -> BootedHost:
        with self._lock:
            i = self._next
            self._next += 1
        name = f"{self.lab.prefix}-{i}"
        address = str(self.subnet.network_address + 10 + i)
        keys = self.dir / f"{name}.authorized_keys"
        keys.write_text((public_key or "") + "\n")
        # labelled like the lab's own, so that Lab.destroy() finds it
        _podman("volume", "rm", "-f", f"{name}-storage", check=False)
        _podman("volume", "create", "--label", f"pgaas.lab={self.lab.prefix}", f"{name}-storage")
        args = ["run", "-d", "--name", name, "--hostname", server_name, "--privileged",
                "--label", f"pgaas.lab={self.lab.prefix}", "--network", self.lab.network, "--ip", address,
                "--tmpfs", "/run:rw,exec,mode=0755", "-v", f"{name}-storage:/var/lib/containers",
                "-v", f"{keys}:/lab/authorized_keys:ro"]
        if self.lab.shared_images:
            (self.dir / "storage.conf").write_text(
                '[storage]\ndriver = "overlay"\nrunroot = "/run/containers/storage"\n'
                'graphroot = "/var/lib/containers/storage"\n\n[storage.options]\n'
                f'additionalimagestores = ["{SHARED_STORE_MOUNT}"]\n')
            args += ["-v", f"{OUTER_STORE}:{SHARED_STORE_MOUNT}:ro",
                     "-v", f"{self.dir / 'storage.conf'}:/etc/containers/storage.conf:ro"]
        _podman(*args, self.lab.image)
        from tests.lab import LabHost

        self.lab.wait_ssh(LabHost(name, address, LAB_USER, str(self.lab.key_path)))
        return BootedHost(address, name)

    def destroy(self, handle) -> None:
        _podman("rm", "-f", "-t", "0", handle, check=False)
        _podman("volume", "rm", "-f", f"{handle}-storage", check=False)

    # -- volumes --------------------------------------------------------------------------------------------
    def _file(self, volume_id: str) -> Path:
        return self.dir / f"volume-{volume_id}.img"

    def attach(self, handle, volume_id: str, size_gb: int, device: str) -> None:
        f = self._file(volume_id)
        if not f.exists():
            with open(f, "wb") as fh:
                fh.truncate(size_gb * 1024**3)
        loop = subprocess.run(["losetup", "--find", "--show", str(f)], check=True, capture_output=True,
                              text=True).stdout.strip()
        self._loops[volume_id] = loop
        st = os.stat(loop)
        major, minor = os.major(st.st_rdev), os.minor(st.st_rdev)
        by_id = f"/dev/disk/by-id/virtio-{volume_id[:20]}"
        _podman("exec", handle, "sh", "-c",
                f"rm -f {device} && mknod {device} b {major} {minor} && mkdir -p /dev/disk/by-id && "
                f"ln -sfn {device} {by_id}")

    def detach(self, handle, volume_id: str, device: str) -> None:
        _podman("exec", handle, "sh", "-c", f"rm -f {device} /dev/disk/by-id/virtio-{volume_id[:20]}",
                check=False)
        loop = self._loops.pop(volume_id, None)
        if loop:
            subprocess.run(["losetup", "-d", loop], check=False, capture_output=True)

    def resize(self, volume_id: str, size_gb: int) -> None:
        f = self._file(volume_id)
        if f.exists():
            with open(f, "r+b") as fh:
                fh.truncate(size_gb * 1024**3)
        loop = self._loops.get(volume_id)
        if loop:
            subprocess.run(["losetup", "--set-capacity", loop], check=True, capture_output=True)

    def delete_volume(self, volume_id: str) -> None:
        self._file(volume_id).unlink(missing_ok=True)

    def close(self) -> None:
        for loop in self._loops.values():
            subprocess.run(["losetup", "-d", loop], check=False, capture_output=True)
        self._loops.clear()
        self.lab.destroy()
        shutil.rmtree(self.dir, ignore_errors=True)
