#!/usr/bin/env python3
"""The fresh-machine check: the README's commands, as written, on a clean Debian 12 (test equipment).

A machine where podman, the virtualenv or the image were once installed by hand hides every missing install step;
this check builds a machine that has none of them and follows the README there:

1. a Debian 12 root filesystem made by debootstrap (minbase plus what a cloud image carries: python3, curl,
   ca-certificates, sudo, iproute2, procps), cached as a podman image and rebuilt only when its recipe changes;
2. started as a privileged podman container (nested podman, like the lab hosts) on a network whose MTU is the
   uplink's, with a fresh volume for its /var/lib/containers; it gets this machine's CA certificates and pip
   configuration (the trust any machine on this network has) and nothing else;
3. inside: `apt-get install git`, a fresh clone of the commit under test, then the README's run command exactly as
   written (in the background, as a user leaves it running in a terminal);
4. through the API (tests/fresh/api_check.py, standard library and psql only): create an instance and wait until
   its standby streams, create a tenant database, write a row through its URI, read it through the read-only URI,
   delete the instance;
5. the README's tour (the block after the `fresh-check: tour` marker), command by command, so the README cannot
   drift from the product.

Each step's wall time is printed. Exit status 0 only when every step passed.

    python3 tests/fresh/check.py [--ref COMMIT] [--keep]

Standard library only: it runs before (and without) the project's virtualenv.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
NAME = "pgaas-fresh"                      # container, network and volume prefix (this check's own)
BASE_IMAGE = "localhost/pgaas-fresh-debian:12"
MIRROR = "http://deb.debian.org/debian"
# What a Debian 12 cloud image carries beyond minbase that the README may rely on (genericcloud has these and
# more: cloud-init brings python3). Not git, podman, venv or PostgreSQL: the README installs what it needs.
CLOUD_PACKAGES = ["ca-certificates", "curl", "python3", "sudo", "iproute2", "procps", "openssh-client",
                  "less", "gnupg"]
SOURCES = f"""\
deb {MIRROR} bookworm main
deb {MIRROR} bookworm-updates main
deb http://deb.debian.org/debian-security bookworm-security main
"""
CHECKOUT = "/root/pgaas"


def log(msg: str) -> None:
    print(f"[fresh] {msg}", flush=True)


def podman(*args: str, check: bool = True, timeout: float = 600, input: bytes | None = None,
           capture: bool = True) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.setdefault("CONTAINERS_CONF", str(REPO / "etc" / "containers.conf"))
    proc = subprocess.run(["podman", *args], env=env, timeout=timeout, input=input,
                          capture_output=capture)
    if check and proc.returncode != 0:
        err = (proc.stderr or b"").decode(errors="replace")[-2000:]
        raise RuntimeError(f"podman {' '.join(args[:3])} ... failed ({proc.returncode}): {err}")
    return proc


class Step:
    """Times one step and records it; a failing step ends the check."""

    times: list[tuple[str, float, str]] = []

    def __init__(self, name: str):
        self.name = name

    def __enter__(self):
        self.t0 = time.monotonic()
        log(f"step: {self.name}")
        return self

    def __exit__(self, exc_type, exc, tb):
        dt = time.monotonic() - self.t0
        outcome = "ok" if exc is None else "FAILED"
        Step.times.append((self.name, dt, outcome))
        log(f"step: {self.name}: {outcome} in {dt:.1f} s")
        return False


def uplink_mtu() -> int:
    """The MTU of the interface of the default route (a nested NAT with a larger MTU stalls downloads)."""
    out = subprocess.run(["ip", "-o", "route", "show", "default"], capture_output=True, text=True).stdout.split()
    dev = out[out.index("dev") + 1] if "dev" in out else None
    try:
        return int(Path(f"/sys/class/net/{dev}/mtu").read_text()) if dev else 1500
    except OSError:
        return 1500


def base_recipe() -> str:
    h = hashlib.sha256("\n".join(["bookworm", MIRROR, *CLOUD_PACKAGES, SOURCES, "v1"]).encode())
    return h.hexdigest()[:16]


def ensure_base_image() -> None:
    """Debian 12 minbase + cloud-image packages, imported as a podman image; cached by its recipe's hash."""
    want = base_recipe()
    got = podman("image", "inspect", "--format", '{{ index .Labels "pgaas.fresh.recipe" }}', BASE_IMAGE,
                 check=False)
    if got.returncode == 0 and got.stdout.decode().strip() == want:
        log(f"base image {BASE_IMAGE} is cached (recipe {want})")
        return
    root = Path(tempfile.mkdtemp(prefix="pgaas-fresh-rootfs-", dir="/var/tmp"))
    try:
        subprocess.run(["debootstrap", "--variant=minbase", f"--include={','.join(CLOUD_PACKAGES)}", "bookworm",
                        str(root), MIRROR], check=True, capture_output=True, timeout=900)
        (root / "etc/apt/sources.list").write_text(SOURCES)
        # a cloud image keeps nothing of the machine that built it
        for p in ("var/cache/apt/archives",):
            for f in (root / p).glob("*.deb"):
                f.unlink()
        tar = subprocess.Popen(["tar", "-C", str(root), "-c", "."], stdout=subprocess.PIPE)
        env = dict(os.environ, CONTAINERS_CONF=str(REPO / "etc" / "containers.conf"))
        subprocess.run(["podman", "import", "--change", f"LABEL pgaas.fresh.recipe={want}",
                        "--change", "CMD [\"/bin/bash\"]", "-", BASE_IMAGE],
                       stdin=tar.stdout, check=True, capture_output=True, env=env, timeout=600)
        tar.wait()
    finally:
        shutil.rmtree(root, ignore_errors=True)


def cleanup() -> None:
    podman("rm", "-f", "-t", "0", NAME, check=False)
    podman("volume", "rm", "-f", f"{NAME}-storage", check=False)
    if podman("network", "exists", NAME, check=False).returncode == 0:
        podman("network", "rm", "-f", NAME, check=False)


def sh(script: str, *, timeout: float = 900, check: bool = True, stream: bool = False,
       input: bytes | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run a bash script inside the machine as root (a login-like shell: HOME=/root, cwd /root)."""
    args = ["exec", "-i", "-w", "/root"]
    for k, v in (env or {}).items():
        args += ["-e", f"{k}={v}"]
    proc = podman(*args, NAME, "bash", "-c", script, check=False, timeout=timeout, input=input,
                  capture=not stream)
    if check and proc.returncode != 0:
        out = "" if stream else (proc.stdout + proc.stderr).decode(errors="replace")[-4000:]
        raise RuntimeError(f"inside the machine: exit {proc.returncode}\n{out}")
    return proc


def start_machine(mtu: int) -> None:
    podman("network", "create", "--label", "pgaas.fresh=1", "--opt", f"mtu={mtu}", NAME)
    podman("volume", "create", "--label", "pgaas.fresh=1", f"{NAME}-storage")
    podman("run", "-d", "--name", NAME, "--hostname", "fresh", "--privileged", "--label", "pgaas.fresh=1",
           "--network", NAME, "--tmpfs", "/run:rw,exec,mode=0755", "--tmpfs", "/tmp:rw,exec,mode=1777",
           "-v", f"{NAME}-storage:/var/lib/containers",
           "-v", f"{REPO}:/src:ro",
           BASE_IMAGE, "sleep", "infinity")
    # The network's trust, as any machine here has it: the CA certificates and pip's configuration. Nothing else.
    cas = sorted(Path("/usr/local/share/ca-certificates").glob("*.crt"))
    for ca in cas:
        podman("cp", str(ca), f"{NAME}:/usr/local/share/ca-certificates/{ca.name}")
    if cas:
        sh("update-ca-certificates >/dev/null")
    for conf in ("/etc/pip.conf", "/etc/xdg/pip"):
        if Path(conf).exists():
            sh(f"mkdir -p {shlex.quote(str(Path(conf).parent))}")
            podman("cp", conf, f"{NAME}:{Path(conf).parent}/")


def resolve_ref(ref: str) -> str:
    return subprocess.run(["git", "-C", str(REPO), "rev-parse", "--verify", f"{ref}^{{commit}}"], check=True,
                          capture_output=True, text=True).stdout.strip()


def tour_commands(readme: str) -> list[str]:
    """The commands of the README's tour: the first ```sh block after the `fresh-check: tour` marker, with
    continuation lines joined; comment-only and blank lines dropped (comments after a command stay: bash skips
    them)."""
    marker = readme.find("fresh-check: tour")
    if marker < 0:
        raise RuntimeError("README.md has no `fresh-check: tour` marker before its tour")
    m = re.search(r"```sh\n(.*?)```", readme[marker:], re.S)
    if not m:
        raise RuntimeError("no ```sh block after the tour marker in README.md")
    commands, buf = [], ""
    for line in m.group(1).splitlines():
        if not buf and (not line.strip() or line.lstrip().startswith("#")):
            continue
        buf += line + "\n"
        if line.rstrip().endswith("\\"):
            continue
        # a shell function or a quoted string may span lines: keep reading until bash can parse it
        if subprocess.run(["bash", "-n"], input=buf.encode(), capture_output=True).returncode != 0:
            continue
        commands.append(buf.rstrip("\n"))
        buf = ""
    if buf:
        raise RuntimeError(f"the tour's last command does not parse:\n{buf}")
    return commands


def run_tour(readme: str, admin_password: str) -> None:
    """One bash session runs the tour's commands in order (set -e -o pipefail; curl fails on an HTTP error, as a
    reader would notice one). The password the run command printed is typed at the tour's `read` prompt."""
    cmds = tour_commands(readme)
    parts = ["set -eo pipefail",
             # a reader sees an HTTP error at once; the check fails on it the same way
             'curl() { command curl --fail-with-body "$@"; }',
             'step() { printf "\\n[tour] \\$ %s\\n" "$1"; T0=$(date +%s%N); }',
             'took() { local ms=$(( ($(date +%s%N) - T0) / 1000000 )); '
             'printf "[tour] (%d.%d s)\\n" $((ms / 1000)) $((ms % 1000 / 100)); }',
             f"cd {CHECKOUT}"]
    for c in cmds:
        parts.append(f"step {shlex.quote(c)}")
        parts.append(c)
        parts.append("took")
    script = "\n".join(parts) + "\n"
    sh(f"cat > /root/tour.sh <<'PGAAS_TOUR_EOF'\n{script}PGAAS_TOUR_EOF")
    # stdin carries the password for the tour's `read`; the script itself comes from a file
    sh("bash /root/tour.sh", input=(admin_password + "\n").encode(), stream=True, timeout=900)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ref", default="HEAD", help="commit to clone and check (default HEAD)")
    ap.add_argument("--keep", action="store_true", help="leave the machine running afterwards (to look inside)")
    ap.add_argument("--setup-timeout", type=float, default=900, help="seconds the run command may take to serve")
    args = ap.parse_args()
    sha = resolve_ref(args.ref)
    t_all = time.monotonic()
    ok = False
    try:
        with Step("clean up an earlier check's machine"):
            cleanup()
        with Step("base image: Debian 12 minbase + cloud-image packages (cached)"):
            ensure_base_image()
        mtu = uplink_mtu()
        with Step(f"start the machine (privileged, network MTU {mtu})"):
            start_machine(mtu)
        with Step("README: install git, clone the commit under test"):
            sh("apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq git >/dev/null")
            sh(f"git clone -q /src {CHECKOUT} && git -C {CHECKOUT} checkout -q --detach {sha} "
               f"&& git -C {CHECKOUT} log -1 --format='%h %s' | cut -c1-100")
        with Step("README: scripts/run.sh (set-up, then serving)"):
            password = start_product(args.setup_timeout)
        with Step("API: instance, standby streaming, tenant database, row through URI and read-only URI, delete"):
            podman("cp", str(HERE / "api_check.py"), f"{NAME}:/root/api_check.py")
            sh("python3 /root/api_check.py", env={"PGAAS_ADMIN_PASSWORD": password}, stream=True, timeout=900)
        with Step("README: the tour, command by command"):
            readme = sh(f"cat {CHECKOUT}/README.md").stdout.decode()
            run_tour(readme, password)
        ok = True
    except Exception as exc:  # report, then show what the machine said
        log(f"FAILED: {type(exc).__name__}: {exc}")
        tail = sh("tail -n 60 /root/run.log 2>/dev/null; tail -n 40 /tmp/pgaas-image-build.log 2>/dev/null",
                  check=False)
        if tail.stdout:
            log("the run command's output (last lines):")
            print(tail.stdout.decode(errors="replace"), flush=True)
    finally:
        if not args.keep:
            with Step("remove the machine"):
                cleanup()
        total = time.monotonic() - t_all
        log("wall time per step:")
        for name, dt, outcome in Step.times:
            log(f"  {dt:7.1f} s  {outcome:<6} {name}")
        log(f"  {total:7.1f} s  total ({'passed' if ok else 'FAILED'}) for {sha[:12]}")
    return 0 if ok else 1


def start_product(timeout: float) -> str:
    """`scripts/run.sh` as the README says, left running; returns the administrator's password it printed."""
    podman("exec", "-d", "-w", CHECKOUT, NAME, "bash", "-c", "exec scripts/run.sh > /root/run.log 2>&1")
    deadline = time.monotonic() + timeout
    password, last_len = None, 0
    while time.monotonic() < deadline:
        out = sh("cat /root/run.log", check=False).stdout.decode(errors="replace")
        for line in out[last_len:].splitlines():
            print(f"    | {line}", flush=True)
        last_len = len(out)
        m = re.search(r"password:\s*(\S+)", out)
        if m:
            password = m.group(1)
        if password and sh("curl -sf http://127.0.0.1:8000/healthz", check=False).returncode == 0:
            return password
        if sh("pgrep -f 'pgaas run' || pgrep -f scripts/run.sh || pgrep -f setup.sh", check=False).returncode != 0:
            raise RuntimeError("scripts/run.sh exited before serving")
        time.sleep(3)
    raise RuntimeError(f"scripts/run.sh did not serve within {timeout:.0f} s")


if __name__ == "__main__":
    sys.exit(main())
