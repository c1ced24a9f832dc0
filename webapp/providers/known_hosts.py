"""The control plane's own SSH known_hosts file (SSH_KNOWN_HOSTS, default <instance>/ssh_known_hosts, 0600).

Every SSH host the providers put into an inventory is checked against it: a host registered with its public host
key(s) is pinned to them; a host without is pinned on first contact (StrictHostKeyChecking=accept-new); from then
on a host presenting another key is refused and the job says so. Framework-free: providers and services use it.
"""
from __future__ import annotations

import base64
import binascii
import fcntl
import hashlib
import hmac
import os
import re
import struct
import subprocess
from contextlib import contextmanager
from pathlib import Path

KEY_TYPES = ("ssh-ed25519", "ssh-rsa", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521",
             "sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com")
MAX_KEYS = 8
_B64 = re.compile(r"^[A-Za-z0-9+/]+={0,2}$")
_CHANGED = re.compile(r"Host key for (\S+) has changed")
MISMATCH = ("host key verification failed for {host} ({address}): the key it presented differs from the pinned "
            "one; if the host was reinstalled, re-register it")


class BadHostKey(ValueError):
    pass


def file_for(config) -> str:
    """The file's path: SSH_KNOWN_HOSTS, else ssh_known_hosts beside the jobs folder (in the instance folder)."""
    return str(config.get("SSH_KNOWN_HOSTS") or Path(config["JOBS_DIR"]).parent / "ssh_known_hosts")


def parse_keys(text) -> list[str]:
    """OpenSSH public host key lines ("ssh-ed25519 AAAA... [comment]" or ssh-keyscan's "<host> ssh-ed25519 AAAA...",
    one a line, or a list of them) ->
    normalized "type base64" lines. Raises BadHostKey with a message on anything else."""
    lines = text if isinstance(text, list) else (text.splitlines() if isinstance(text, str) else None)
    if lines is None or not all(isinstance(x, str) for x in lines):
        raise BadHostKey("host_key must be a string of OpenSSH public key lines (or a list of them)")
    out = []
    for raw in lines:
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        if len(parts) >= 3 and parts[0] not in KEY_TYPES and parts[1] in KEY_TYPES:
            parts = parts[1:]  # ssh-keyscan's and known_hosts' form: "<host> <type> <key>"
        if len(parts) < 2 or parts[0] not in KEY_TYPES:
            raise BadHostKey(f"host_key lines look like 'ssh-ed25519 AAAA...' (types: {', '.join(KEY_TYPES[:5])}); "
                             f"got {line[:40]!r}")
        kind, b64 = parts[0], parts[1]
        try:
            if not _B64.match(b64):
                raise binascii.Error
            blob = base64.b64decode(b64, validate=True)
            (n,) = struct.unpack(">I", blob[:4])
            inner = blob[4:4 + n].decode("ascii")
        except (binascii.Error, struct.error, UnicodeDecodeError):
            raise BadHostKey(f"host_key: the {kind} key is not valid base64 key data") from None
        if inner != kind or len(blob) < 4 + n + 16:
            raise BadHostKey(f"host_key: the key data is not an {kind} key")
        if f"{kind} {b64}" not in out:
            out.append(f"{kind} {b64}")
    if not out:
        raise BadHostKey("host_key has no key line")
    if len(out) > MAX_KEYS:
        raise BadHostKey(f"host_key: at most {MAX_KEYS} keys")
    return out


def fingerprint(key_line: str) -> str:
    """SHA256:... as ssh-keygen -l prints it."""
    blob = base64.b64decode(key_line.split()[1])
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def pattern(address: str, port: int) -> str:
    """How ssh names the host in known_hosts."""
    return address if int(port) == 22 else f"[{address}]:{int(port)}"


def _matches(hosts_field: str, name: str) -> bool:
    for h in hosts_field.split(","):
        if h.startswith("|1|"):
            try:
                salt, digest = (base64.b64decode(p) for p in h[3:].split("|", 1))
            except (binascii.Error, ValueError):
                continue
            if hmac.compare_digest(hmac.new(salt, name.encode(), hashlib.sha1).digest(), digest):
                return True
        elif h == name:
            return True
    return False


def keys(path, address: str, port: int) -> list[str]:
    """The pinned "type base64" lines for a host (hashed or plain entries; markers such as @revoked skipped)."""
    p = Path(path)
    if not p.exists():
        return []
    name, out = pattern(address, port), []
    for line in p.read_text().splitlines():
        parts = line.split()
        if len(parts) >= 3 and not line.startswith(("#", "@")) and _matches(parts[0], name):
            out.append(f"{parts[1]} {parts[2]}")
    return out


def fingerprints(path, address: str, port: int) -> list[dict]:
    return [{"type": k.split()[0], "sha256": fingerprint(k)} for k in keys(path, address, port)]


@contextmanager
def _locked(path):
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{p}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield p
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def ensure(path) -> str:
    """Create the file (0600) if missing; ssh appends first-contact keys to it."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.close(fd)
    os.chmod(p, 0o600)
    return str(p)


def _remove(p: Path, name: str) -> None:
    if p.exists():
        subprocess.run(["ssh-keygen", "-R", name, "-f", str(p)], capture_output=True, check=False, timeout=30)
        Path(f"{p}.old").unlink(missing_ok=True)  # ssh-keygen's backup of the previous file


def forget(path, address: str, port: int = 22) -> None:
    """Remove every entry of [address]:port (ssh-keygen -R)."""
    with _locked(path) as p:
        _remove(p, pattern(address, port))


def pin(path, address: str, port: int, key_lines: list[str]) -> None:
    """Make key_lines the host's only pinned keys."""
    with _locked(path) as p:
        name = pattern(address, port)
        if sorted(keys(p, address, port)) == sorted(key_lines):
            return
        _remove(p, name)
        ensure(p)
        with open(p, "a") as f:
            f.writelines(f"{name} {k}\n" for k in key_lines)


def ssh_vars(path, host_id: str) -> dict:
    """Inventory variables for an SSH host checked against the file. host_key_checking True keeps Ansible from
    adding its own StrictHostKeyChecking=no (ansible.cfg has host_key_checking = False for throwaway hosts);
    ssh keeps the first value of an option, so the one below is what takes effect. A control socket of its own
    per host identity: a master connection opened under another registration is never reused."""
    tag = hashlib.sha1(f"{path}|{host_id}".encode()).hexdigest()[:12]
    return {"ansible_host_key_checking": True,
            "ansible_ssh_common_args": f"-o StrictHostKeyChecking=accept-new -o UserKnownHostsFile={path} "
                                       "-o HashKnownHosts=no",
            "ansible_control_path": f"%(directory)s/pgaas-{tag}-%%C"}


def explain(message: str, host: str) -> str | None:
    """A plain sentence for ssh's host key refusal, else None."""
    if "Host key verification failed" not in message and "REMOTE HOST IDENTIFICATION HAS CHANGED" not in message:
        return None
    m = _CHANGED.search(message)
    address = m.group(1) if m else "its address"
    if address.startswith("[") and "]:" in address:
        address = address[1:].split("]:")[0] + ":" + address.split("]:")[1]
    return MISMATCH.format(host=host, address=address)
