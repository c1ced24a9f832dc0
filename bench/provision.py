#!/usr/bin/env python3
"""Provisioning benchmark: time from the POST to a pair whose standby streams, through the API, beside two
baselines measured in the same run:

  api  POST /api/v1/instances (one replica, asynchronous, the API's defaults) on an in-process control plane
       (tests.conftest.Live: real HTTP, one real job worker, ansible-runner, podman); timed until the job has
       succeeded, i.e. the deploy play saw the leader writable and every replica streaming.
  a    the same etcd + Patroni pair started with bare podman commands: no control plane, no Ansible. Patroni's
       configuration is rendered from roles/postgres_node/templates/patroni.yml.j2 with the role's defaults
       (ttl, loop_wait, retry_timeout, parameters, initdb, pg_hba, ...), bind-mounted read-only like the role
       does; etcd runs through the image's entrypoint like roles/etcd. Network + volumes, then the three
       containers in parallel.
  b    the floor: a primary (initdb + postgres) and a standby (pg_basebackup -R from the primary, then postgres),
       bare podman, no Patroni, the same PostgreSQL parameters and initdb options.

"Ready" for a and b: the primary is not in recovery and pg_stat_replication shows a row with state 'streaming'
(polled every 50 ms with psycopg through the primary's published 127.0.0.1 port).

The three kinds run interleaved (api, a, b, api, a, b, ...) so machine noise hits all of them alike. Every
container, volume and network created here carries the label pgaas.instance=<name> (bench-api-N, bench-a-N,
bench-b-N) and is removed after each run (untimed), also on Ctrl-C. Exit status is 0 whatever the numbers
(a benchmark, not a test), unless the benchmark could not run at all.

    .venv/bin/python bench/provision.py [--runs N]
"""
from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
CONTAINERS_CONF = str(REPO / "etc" / "containers.conf")
os.environ["CONTAINERS_CONF"] = CONTAINERS_CONF  # for podman calls made here and by the control plane's plays
PODMAN_ENV = {**os.environ, "CONTAINERS_CONF": CONTAINERS_CONF}
IMAGE = "localhost/pgaas-postgres:15"
ROLE_DIR = REPO / "roles" / "postgres_node"
POLL = 0.05
TARGET_SECONDS = 12.0
TARGET_RATIO_A = 1.5
API_TIMEOUT = 240.0
BASELINE_TIMEOUT = 120.0
PGDATA = "/var/lib/postgresql/data/pgdata"
AS_POSTGRES = "setpriv --reuid=postgres --regid=postgres --init-groups"


class RunFailed(Exception):
    pass


# -- podman helpers ------------------------------------------------------------------------------------------
def podman(*args, check=True) -> subprocess.CompletedProcess:
    r = subprocess.run(["podman", *args], capture_output=True, text=True, env=PODMAN_ENV)
    if check and r.returncode != 0:
        raise RunFailed(f"podman {' '.join(args[:3])} ...: {r.stderr.strip() or r.stdout.strip()}")
    return r


def parallel(cmds: list[list[str]]) -> None:
    """Start the podman commands at once (Popen) and wait for all of them."""
    procs = [subprocess.Popen(["podman", *c], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=PODMAN_ENV) for c in cmds]
    errors = []
    for c, p in zip(cmds, procs):
        out, err = p.communicate()
        if p.returncode != 0:
            errors.append(f"podman {' '.join(c[:2])} ... {c[-1] if len(c) < 4 else ''}: {err.strip() or out.strip()}")
    if errors:
        raise RunFailed("; ".join(errors))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def remove_labelled(instance: str, networks: list[str] = (), volumes: list[str] = ()) -> list[str]:
    """Remove every container and volume labelled pgaas.instance=<instance>, the named volumes and networks.
    Returns what was found (for reporting leftovers)."""
    label = f"label=pgaas.instance={instance}"
    found = []
    ctrs = podman("ps", "-aq", "--filter", label, check=False).stdout.split()
    if ctrs:
        found += [f"{len(ctrs)} container(s)"]
        podman("rm", "-f", "-t", "0", *ctrs, check=False)
    vols = set(podman("volume", "ls", "-q", "--filter", label, check=False).stdout.split())
    vols |= {v for v in volumes if podman("volume", "exists", v, check=False).returncode == 0}
    if vols:
        found += [f"volume(s) {', '.join(sorted(vols))}"]
        podman("volume", "rm", "-f", *sorted(vols), check=False)
    for net in networks:
        if podman("network", "exists", net, check=False).returncode == 0:
            found += [f"network {net}"]
            podman("network", "rm", "-f", net, check=False)
    return found


def wait_streaming(port: int, password: str, deadline: float) -> None:
    """Until the server on 127.0.0.1:<port> is a primary with a streaming standby (poll every POLL seconds)."""
    import psycopg

    conn = None
    last = "no answer"
    try:
        while True:
            try:
                if conn is None:
                    conn = psycopg.connect(host="127.0.0.1", port=port, user="postgres", password=password,
                                           dbname="postgres", connect_timeout=2, autocommit=True)
                row = conn.execute("SELECT pg_is_in_recovery(), (SELECT count(*) FROM pg_stat_replication "
                                   "WHERE state = 'streaming')").fetchone()
                if not row[0] and row[1] >= 1:
                    return
                last = f"in_recovery={row[0]} streaming={row[1]}"
            except psycopg.Error as exc:
                last = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                if conn is not None:
                    conn.close()
                    conn = None
            if time.monotonic() > deadline:
                raise RunFailed(f"no streaming standby in time (last: {last})")
            time.sleep(POLL)
    finally:
        if conn is not None:
            conn.close()


# -- the role's configuration, rendered without Ansible ------------------------------------------------------
def role_defaults() -> dict:
    import yaml

    return yaml.safe_load((ROLE_DIR / "defaults" / "main.yml").read_text())


def render_patroni(scope: str, members: list[str], member: str, etcd_hosts: str, pw: dict) -> str:
    """roles/postgres_node/templates/patroni.yml.j2 with the role's defaults, as the deploy play would render it
    (synchronous_mode: the API's default, false)."""
    import jinja2

    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    env.filters["to_json"] = lambda v: json.dumps(v)
    env.filters["bool"] = lambda v: v if isinstance(v, bool) else str(v).lower() in ("1", "true", "yes", "on")
    ctx = role_defaults()
    ctx.update({
        "ansible_managed": "Written by bench/provision.py (baseline a, no Ansible)",
        "postgres_node_instance_name": scope,
        "postgres_node_members": [{"name": m} for m in members],
        "postgres_node_etcd_hosts": etcd_hosts,
        "postgres_node_bootstrap_member": members[0],
        "postgres_node_synchronous_mode": False,
        "postgres_node_superuser_password": pw["superuser"],
        "postgres_node_replication_password": pw["replication"],
        "postgres_node_restapi_password": pw["restapi"],
        "__postgres_node_member": {"name": member},
    })
    for k, v in list(ctx.items()):
        if isinstance(v, str) and "{{" in v:
            ctx[k] = env.from_string(v).render(ctx)
    return env.from_string((ROLE_DIR / "templates" / "patroni.yml.j2").read_text()).render(ctx)


def pg_settings() -> tuple[list[str], list[str]]:
    """The role's PostgreSQL parameters as postgres -c options, and its initdb options."""
    d = role_defaults()
    params = {**d["postgres_node_parameters"], "listen_addresses": "*", "unix_socket_directories": "/run/postgresql"}
    opts = []
    for k, v in params.items():
        opts += ["-c", f"{k}={v}"]
    initdb = []
    for o in d["postgres_node_initdb"]:
        if isinstance(o, dict):
            initdb += [f"--{k}={v}" for k, v in o.items()]
        else:
            initdb.append(f"--{o}")
    return opts, initdb


# -- api -----------------------------------------------------------------------------------------------------
def run_api(live, n: int) -> dict:
    name = f"bench-api-{n}"
    prefix = f"pgaas-{name}"
    stale = remove_labelled(name, networks=[prefix])
    if stale:
        print(f"    (removed leftovers of an earlier run: {', '.join(stale)})", flush=True)
    job = None
    created = False
    try:
        t0 = time.monotonic()
        r = live.admin.post("/api/v1/instances", json={"name": name})
        if r.status_code != 202:
            raise RunFailed(f"POST returned {r.status_code}: {r.text[:300]}")
        created = True
        job_id = r.json()["job"]["id"]
        events: list[dict] = []
        deadline = t0 + API_TIMEOUT
        while True:  # poll the job at the baselines' pace, fetching only new events
            after = events[-1]["id"] if events else 0
            job = live.admin.get(f"/api/v1/jobs/{job_id}?after={after}").json()
            events += job.get("events", [])
            if job["status"] in ("succeeded", "failed", "canceled", "error"):
                break
            if time.monotonic() > deadline:
                raise RunFailed(f"job {job_id} still {job['status']} after {API_TIMEOUT:.0f} s")
            time.sleep(POLL)
        elapsed = time.monotonic() - t0
        if job["status"] != "succeeded":
            failed = [f"{e['task']} on {e['host']}: {e['message']}" for e in events if e["status"] == "failed"]
            raise RunFailed(f"job {job['status']}: {job.get('error')} {failed[:2]}")
        created_at = datetime.fromisoformat(job["created_at"])
        started_at = datetime.fromisoformat(job["started_at"])
        finished_at = datetime.fromisoformat(job["finished_at"])
        tasks: dict[str, float] = defaultdict(float)
        for e in events:
            if e.get("task") and e.get("duration") is not None:
                tasks[e["task"]] += float(e["duration"])
        return {"seconds": elapsed,
                "phases": {"queued -> started (worker pickup)": (started_at - created_at).total_seconds(),
                           "started -> finished (playbook run)": (finished_at - started_at).total_seconds(),
                           "rest (HTTP, commit, our 50 ms poll)": elapsed - (finished_at - created_at).total_seconds()},
                "tasks": dict(tasks)}
    finally:
        if created:
            delete_api_instance(live, name, job)
        remove_labelled(name, networks=[prefix])  # in case the teardown job could not run
        shutil.rmtree(f"/var/lib/pgaas/instances/{name}", ignore_errors=True)


def delete_api_instance(live, name: str, create_job: dict | None) -> None:
    try:
        if create_job is None or create_job.get("status") not in ("succeeded", "failed", "canceled", "error"):
            jobs = live.admin.get(f"/api/v1/jobs?instance={name}").json().get("jobs", [])
            for j in jobs:
                if j["status"] in ("queued", "running"):
                    live.admin.post(f"/api/v1/jobs/{j['id']}/cancel")
                    live.admin.wait_job(j["id"], timeout=120)
        r = live.admin.delete(f"/api/v1/instances/{name}")
        if r.status_code == 202:
            job = live.admin.wait_job(r.json()["job"]["id"], timeout=180)
            if job["status"] != "succeeded":
                print(f"    warning: delete of {name} ended {job['status']}: {job.get('error')}", flush=True)
        elif r.status_code != 404:
            print(f"    warning: DELETE {name} returned {r.status_code}: {r.text[:200]}", flush=True)
    except Exception as exc:  # cleanup must go on: remove_labelled follows
        print(f"    warning: API cleanup of {name}: {exc}", flush=True)


# -- baseline a: etcd + Patroni, bare podman -----------------------------------------------------------------
def run_a(n: int, workdir: Path) -> dict:
    name = f"bench-a-{n}"
    etcd = f"{name}-etcd"
    members = [f"{name}-0", f"{name}-1"]
    volumes = [f"{etcd}-data"] + [f"{m}-data" for m in members]
    stale = remove_labelled(name, networks=[name], volumes=volumes)
    if stale:
        print(f"    (removed leftovers of an earlier run: {', '.join(stale)})", flush=True)
    pw = {k: secrets.token_urlsafe(18) for k in ("superuser", "replication", "restapi")}
    ports = {m: (free_port(), free_port()) for m in members}
    cfgdir = workdir / name
    label = ["--label", f"pgaas.instance={name}"]
    try:
        t0 = time.monotonic()
        cfgdir.mkdir(mode=0o700)
        for m in members:
            (cfgdir / m).mkdir(mode=0o700)
            f = cfgdir / m / "patroni.yml"
            f.write_text(render_patroni(name, members, m, f"{etcd}:2379", pw))
            f.chmod(0o600)
        parallel([["network", "create", *label, "--label", "pgaas.component=postgres", name],
                  ["volume", "create", *label, "--label", "pgaas.component=etcd", volumes[0]],
                  *[["volume", "create", *label, "--label", "pgaas.component=postgres", "--label",
                     f"pgaas.member={m}", f"{m}-data"] for m in members]])
        runs = [["run", "-d", "--name", etcd, "--hostname", etcd, "--network", name,
                 "-v", f"{volumes[0]}:/var/lib/etcd", "-e", f"PGAAS_ETCD_NAME={etcd}", "--stop-timeout", "10",
                 *label, "--label", "pgaas.component=etcd", IMAGE, "etcd"]]
        for m in members:
            pg, api = ports[m]
            runs.append(["run", "-d", "--name", m, "--hostname", m, "--network", name,
                         "-p", f"127.0.0.1:{pg}:5432", "-p", f"127.0.0.1:{api}:8008",
                         "-v", f"{m}-data:/var/lib/postgresql/data",
                         "-v", f"{cfgdir / m / 'patroni.yml'}:/etc/pgaas/patroni.yml:ro", "--stop-timeout", "30",
                         *label, "--label", "pgaas.component=postgres", "--label", f"pgaas.member={m}",
                         IMAGE, "patroni"])
        parallel(runs)
        started = time.monotonic() - t0
        wait_streaming(ports[members[0]][0], pw["superuser"], t0 + BASELINE_TIMEOUT)
        return {"seconds": time.monotonic() - t0, "containers_started": started}
    except RunFailed as exc:
        raise RunFailed(f"{exc}\n{logs_tail([etcd, *members])}") from None
    finally:
        remove_labelled(name, networks=[name], volumes=volumes)
        shutil.rmtree(cfgdir, ignore_errors=True)


# -- baseline b: initdb + pg_basebackup, bare podman, no Patroni ---------------------------------------------
def run_b(n: int) -> dict:
    name = f"bench-b-{n}"
    primary, standby = f"{name}-0", f"{name}-1"
    volumes = [f"{primary}-data", f"{standby}-data"]
    stale = remove_labelled(name, networks=[name], volumes=volumes)
    if stale:
        print(f"    (removed leftovers of an earlier run: {', '.join(stale)})", flush=True)
    password = secrets.token_urlsafe(18)
    ports = {primary: free_port(), standby: free_port()}
    opts, initdb_opts = pg_settings()
    postgres_cmd = " ".join(["exec", AS_POSTGRES, "postgres", "-D", PGDATA, *[f"'{o}'" for o in opts]])
    prep = ("set -e; install -d -o postgres -g postgres -m 2775 /run/postgresql; "
            "chown postgres:postgres /var/lib/postgresql/data; chmod 0700 /var/lib/postgresql/data; ")
    primary_sh = (prep + "umask 077; printf '%s' \"$PGAAS_PW\" > /run/pw; chown postgres /run/pw; "
                  f"{AS_POSTGRES} initdb -D {PGDATA} -U postgres --pwfile=/run/pw --auth-local=peer "
                  f"--auth-host=scram-sha-256 {' '.join(initdb_opts)} >/dev/null; rm -f /run/pw; "
                  f"printf 'host replication postgres 0.0.0.0/0 scram-sha-256\\n"
                  f"host all all 0.0.0.0/0 scram-sha-256\\n' >> {PGDATA}/pg_hba.conf; " + postgres_cmd)
    standby_sh = (prep + "export PGPASSWORD=\"$PGAAS_PW\"; "
                  f"until {AS_POSTGRES} pg_basebackup -h {primary} -U postgres -D {PGDATA} -R -X stream -c fast -w "
                  f"2>/dev/null; do rm -rf {PGDATA}; sleep 0.05; done; " + postgres_cmd)
    label = ["--label", f"pgaas.instance={name}"]
    try:
        t0 = time.monotonic()
        parallel([["network", "create", *label, name],
                  *[["volume", "create", *label, v] for v in volumes]])
        parallel([["run", "-d", "--name", c, "--hostname", c, "--network", name, "-p", f"127.0.0.1:{ports[c]}:5432",
                   "-v", f"{c}-data:/var/lib/postgresql/data", "-e", f"PGAAS_PW={password}", *label,
                   "--entrypoint", "bash", IMAGE, "-c", sh]
                  for c, sh in ((primary, primary_sh), (standby, standby_sh))])
        started = time.monotonic() - t0
        wait_streaming(ports[primary], password, t0 + BASELINE_TIMEOUT)
        return {"seconds": time.monotonic() - t0, "containers_started": started}
    except RunFailed as exc:
        raise RunFailed(f"{exc}\n{logs_tail([primary, standby])}") from None
    finally:
        remove_labelled(name, networks=[name], volumes=volumes)


def logs_tail(containers: list[str]) -> str:
    out = []
    for c in containers:
        r = podman("logs", "--tail", "5", c, check=False)
        text = (r.stdout + r.stderr).strip().replace("\n", "\n        ")
        out.append(f"      {c}: {text or '(no logs)'}")
    return "\n".join(out)


# -- main ----------------------------------------------------------------------------------------------------
def fmt(v: float | None) -> str:
    return "   -  " if v is None else f"{v:6.2f}"


def median(xs: list[float]) -> float | None:
    return statistics.median(xs) if xs else None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=3, help="runs of each kind (at least 3 for a result; default 3)")
    args = ap.parse_args()
    if args.runs < 1:
        ap.error("--runs must be at least 1")
    if podman("image", "exists", IMAGE, check=False).returncode != 0:
        print(f"image {IMAGE} is missing: build it with playbooks/image.yml", file=sys.stderr)
        return 2

    def on_term(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # also when started with SIGINT ignored (cmd &)

    from tests.conftest import Live, make_app

    workdir = Path(tempfile.mkdtemp(prefix="pgaas-bench-"))
    os.chmod(workdir, 0o700)
    results: dict[str, list[dict]] = {"api": [], "a": [], "b": []}
    failures: dict[str, int] = {"api": 0, "a": 0, "b": 0}
    live = None
    interrupted = False
    print(f"pgaas provisioning benchmark: {args.runs} run(s) of each kind, interleaved (api, a, b); "
          f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}", flush=True)
    others = podman("ps", "-q", check=False).stdout.split()
    if others:
        print(f"  note: {len(others)} other container(s) already running on this machine (noise)", flush=True)
    print("  api = POST /api/v1/instances -> job succeeded (leader writable, replica streaming)", flush=True)
    print("  a   = etcd + 2 Patroni, bare podman (role's Patroni config) -> standby streaming", flush=True)
    print("  b   = initdb primary + pg_basebackup standby, bare podman, no Patroni -> standby streaming", flush=True)
    try:
        live = Live(make_app(f"sqlite:///{workdir / 'pgaas.sqlite'}", workdir / "instance"), workers=1)
        for i in range(1, args.runs + 1):
            for kind, fn in (("api", lambda: run_api(live, i)), ("a", lambda: run_a(i, workdir)),
                             ("b", lambda: run_b(i))):
                try:
                    res = fn()
                except RunFailed as exc:
                    failures[kind] += 1
                    print(f"  run {i} {kind:<3}   FAILED: {exc}", flush=True)
                    continue
                results[kind].append(res)
                extra = ""
                if kind == "api":
                    ph = res["phases"]
                    extra = (f"  (pickup {ph['queued -> started (worker pickup)']:.2f} s, playbook "
                             f"{ph['started -> finished (playbook run)']:.2f} s)")
                else:
                    extra = f"  (containers started at {res['containers_started']:.2f} s)"
                print(f"  run {i} {kind:<3} {res['seconds']:7.2f} s{extra}", flush=True)
    except KeyboardInterrupt:
        interrupted = True
        print("\ninterrupted: cleaning up", flush=True)
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if live is not None:
            try:
                live.close()
            except Exception as exc:
                print(f"warning: closing the control plane: {exc}", flush=True)
        for i in range(1, args.runs + 1):  # belt and braces: nothing of ours may stay behind
            remove_labelled(f"bench-api-{i}", networks=[f"pgaas-bench-api-{i}"])
            remove_labelled(f"bench-a-{i}", networks=[f"bench-a-{i}"])
            remove_labelled(f"bench-b-{i}", networks=[f"bench-b-{i}"])
        shutil.rmtree(workdir, ignore_errors=True)
        signal.signal(signal.SIGINT, signal.default_int_handler)

    print(f"load average at the end: {os.getloadavg()[0]:.2f} (1 min), {os.getloadavg()[1]:.2f} (5 min)")
    med = {k: median([r["seconds"] for r in v]) for k, v in results.items()}
    print("\nmedians (seconds, successful runs):")
    for k, label in (("api", "api"), ("a", "baseline a (etcd + Patroni, bare podman)"),
                     ("b", "baseline b (initdb + pg_basebackup, no Patroni)")):
        fails = f", {failures[k]} failed" if failures[k] else ""
        print(f"  {label:<48} {fmt(med[k])}   (n={len(results[k])}{fails})")
    ratio_a = med["api"] / med["a"] if med["api"] and med["a"] else None
    ratio_b = med["api"] / med["b"] if med["api"] and med["b"] else None
    print(f"  ratio api/a  {'-' if ratio_a is None else f'{ratio_a:.2f}x'}   (what the control plane adds over the "
          f"same Patroni pair)")
    print(f"  ratio api/b  {'-' if ratio_b is None else f'{ratio_b:.2f}x'}   (over the floor)")

    if results["api"]:
        print("\nAPI runs, median per phase (seconds):")
        for p in results["api"][0]["phases"]:
            print(f"  {p:<40} {median([r['phases'][p] for r in results['api']]):6.2f}")
        names = set().union(*(r["tasks"] for r in results["api"]))
        per_task = {t: median([r["tasks"].get(t, 0.0) for r in results["api"]]) for t in names}
        print("  top 5 slowest tasks (median of each run's task durations summed over hosts; nodes run in "
              "parallel, so these overlap):")
        for t, v in sorted(per_task.items(), key=lambda kv: -kv[1])[:5]:
            print(f"    {v:6.2f}  {t}")

    met_time = med["api"] is not None and med["api"] <= TARGET_SECONDS
    met_ratio = ratio_a is not None and ratio_a <= TARGET_RATIO_A
    print(f"\ntarget: pair ready through the API in <= {TARGET_SECONDS:.0f} s and <= {TARGET_RATIO_A}x baseline a")
    print(f"  api median {fmt(med['api']).strip()} s <= {TARGET_SECONDS:.0f} s: {'yes' if met_time else 'no'}; "
          f"api/a {'-' if ratio_a is None else f'{ratio_a:.2f}x'} <= {TARGET_RATIO_A}x: {'yes' if met_ratio else 'no'}")
    print(f"  target {'MET' if met_time and met_ratio else 'NOT met'}"
          f"{' (fewer than 3 runs: not a result)' if args.runs < 3 else ''}"
          f"{' (interrupted: partial)' if interrupted else ''}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
