#!/usr/bin/env python3
"""Provisioning benchmark: time from the POST to a pair whose standby streams, through the API, beside two
baselines measured in the same run:

  api  POST /api/v1/instances (one replica, asynchronous, the API's defaults) on an in-process control plane
       (tests.conftest.Live: real HTTP, one real job worker, ansible-runner, podman); timed until the job has
       succeeded, i.e. the deploy play saw the leader writable and every replica streaming.
  a    the same etcd + Patroni pair started with bare podman commands: no control plane, no Ansible in the timed
       part. Patroni's configuration is rendered beforehand (untimed) by Ansible itself from the role's template,
       defaults and vars (bench/patroni_config.yml: the deploy's template task alone), bind-mounted read-only
       like the role does; etcd runs through the image's entrypoint like roles/etcd. Network + volumes, then the
       three containers in parallel.
  b    the floor: a primary (initdb + postgres) and a standby (pg_basebackup -R from the primary, then postgres),
       bare podman, no Patroni, the same PostgreSQL parameters and initdb options.

"Ready" for a and b: the primary is not in recovery and pg_stat_replication shows a row with state 'streaming'
(polled every 50 ms with psycopg through the primary's published 127.0.0.1 port).

The three kinds run interleaved (api, a, b, api, a, b, ...) so machine noise hits all of them alike. Every
container, volume and network created here carries the label pgaas.instance=<name> (bench-prov-api-NN,
bench-prov-a-NN, bench-prov-b-NN; containers and networks are named pgaas-<name>...) and is removed after each
run (untimed), also on Ctrl-C or SIGTERM. Exit status 0 whatever the numbers (a benchmark, not a test), 1 if a
run failed or the benchmark could not run, 130 when interrupted. --smoke: one run of each kind.

    .venv/bin/python bench/provision.py [--runs N] [--smoke]
"""
from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from datetime import datetime
from pathlib import Path

import _common as common
from _common import BenchFailed as RunFailed, podman

IMAGE = common.IMAGE
PREFIX = "bench-prov-"
POLL = 0.05
TARGET_SECONDS = 12.0
TARGET_RATIO_A = 1.5
API_TIMEOUT = 240.0
BASELINE_TIMEOUT = 120.0
PGDATA = "/var/lib/postgresql/data/pgdata"
AS_POSTGRES = "setpriv --reuid=postgres --regid=postgres --init-groups"
ROLE_DEFAULTS = common.REPO / "roles" / "postgres_node" / "defaults" / "main.yml"


# -- podman helpers ------------------------------------------------------------------------------------------
def parallel(cmds: list[list[str]]) -> None:
    """Start the podman commands at once (Popen) and wait for all of them."""
    procs = [subprocess.Popen(["podman", *c], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=common.PODMAN_ENV) for c in cmds]
    errors = []
    for c, p in zip(cmds, procs):
        out, err = p.communicate()
        if p.returncode != 0:
            errors.append(f"podman {' '.join(c[:2])} ... {c[-1] if len(c) < 4 else ''}: {err.strip() or out.strip()}")
    if errors:
        raise RunFailed("; ".join(errors))


def free_port() -> int:
    """A port the kernel hands out (its ephemeral range): never one of the test runs' fixed ranges."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def clean(name: str) -> None:
    stale = common.remove_leftovers(name)
    if stale:
        print(f"    (removed leftovers of an earlier run: {', '.join(stale)})", flush=True)


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


# -- the role's configuration --------------------------------------------------------------------------------
def render_patroni(workdir: Path, cfgdir: Path, scope: str, members: list[str], etcd_hosts: str, pw: dict,
                   tls: dict) -> None:
    """<cfgdir>/<member>/patroni.yml for each member, rendered by Ansible (bench/patroni_config.yml) from the role's
    template with its defaults and vars, as the deploy play renders it (synchronous_mode: the API's default,
    false). Ansible, not a Jinja environment of our own: the template uses Ansible's filters and the role's vars
    are templates themselves, so only Ansible renders them as the deploy does, whatever the role adds later."""
    inputs = cfgdir / "vars.json"
    inputs.touch(mode=0o600)
    inputs.write_text(json.dumps({
        "bench_config_dir": str(cfgdir),
        "postgres_node_instance_name": scope,
        "postgres_node_members": [{"name": m} for m in members],
        "postgres_node_etcd_hosts": etcd_hosts,
        "postgres_node_synchronous_mode": False,
        "postgres_node_superuser_password": pw["superuser"],
        "postgres_node_replication_password": pw["replication"],
        "postgres_node_restapi_password": pw["restapi"],
        "postgres_node_tls_ca_cert": tls["ca_cert"],
        "postgres_node_tls_certs": tls["certs"],
        # no instance network here (bare podman): the superuser and the replication role from anywhere, as before
        "postgres_node_trusted_addresses": None,
    }))
    r = common.run_playbook(workdir, "bench/patroni_config.yml", {"bench_vars_file": str(inputs)})
    if r.status != "successful":
        raise RunFailed(f"rendering the Patroni configuration: {common.playbook_failure(r)}")


def pg_settings() -> tuple[list[str], list[str]]:
    """The role's PostgreSQL parameters as postgres -c options, and its initdb options (plain values in the
    role's defaults: no templating needed)."""
    import yaml

    d = yaml.safe_load(ROLE_DEFAULTS.read_text())
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
def run_api(cp: common.ControlPlane, n: int) -> dict:
    name = f"{PREFIX}api-{n:02d}"
    clean(name)
    try:
        t0 = time.monotonic()
        job_id = cp.create(name)["job"]["id"]
        events: list[dict] = []
        deadline = t0 + API_TIMEOUT
        while True:  # poll the job at the baselines' pace, fetching only new events
            after = events[-1]["id"] if events else 0
            job = cp.live.admin.get(f"/api/v1/jobs/{job_id}?after={after}").json()
            events += job.get("events", [])
            if job["status"] in common.FINAL:
                break
            if time.monotonic() > deadline:
                raise RunFailed(f"job {job_id} still {job['status']} after {API_TIMEOUT:.0f} s")
            time.sleep(POLL)
        elapsed = time.monotonic() - t0
        if job["status"] != "succeeded":
            raise RunFailed(common.job_failure({**job, "events": events}))
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
        with common.shielded():  # untimed
            if name in cp.created:
                try:
                    outcome = cp.delete(name)
                except Exception as exc:  # removal below goes on regardless
                    outcome = f"API delete failed: {exc}"
                if outcome != "delete job succeeded":
                    print(f"    warning: delete of {name}: {outcome}", flush=True)
            common.remove_leftovers(name)  # in case the teardown job could not run


# -- baseline a: etcd + Patroni, bare podman -----------------------------------------------------------------
# TLS as the roles set it up (roles/postgres_node/tasks/member.yml, roles/etcd/vars/main.yml): certificates from
# the control plane's code, the member's command copies them to its tmpfs, etcd requires client certificates.
MEMBER_TLS_START = ("install -d -o postgres -g postgres -m 0700 /run/pgaas /run/pgaas/tls && install -o postgres "
                    "-g postgres -m 0600 /etc/pgaas/tls/ca.crt /etc/pgaas/tls/server.crt /etc/pgaas/tls/server.key "
                    "/run/pgaas/tls/ && exec pgaas-entrypoint patroni")


def etcd_tls_command(name: str) -> list[str]:
    return ["/usr/bin/etcd", f"--name={name}", "--data-dir=/var/lib/etcd",
            "--listen-client-urls=https://0.0.0.0:2379", f"--advertise-client-urls=https://{name}:2379",
            "--listen-peer-urls=https://0.0.0.0:2380", f"--initial-advertise-peer-urls=https://{name}:2380",
            f"--initial-cluster={name}=https://{name}:2380", f"--initial-cluster-token={name}",
            "--initial-cluster-state=new", "--client-cert-auth", "--trusted-ca-file=/etc/pgaas/tls/ca.crt",
            "--cert-file=/etc/pgaas/tls/server.crt", "--key-file=/etc/pgaas/tls/server.key",
            "--peer-client-cert-auth", "--peer-trusted-ca-file=/etc/pgaas/tls/ca.crt",
            "--peer-cert-file=/etc/pgaas/tls/server.crt", "--peer-key-file=/etc/pgaas/tls/server.key"]


def issue_tls(scope: str, members: list[str], etcd: str, cfgdir: Path) -> dict:
    """The pair's certificates, as the control plane issues them (untimed), in <cfgdir>/<container>/tls."""
    from types import SimpleNamespace

    from webapp.services import certificates

    inst = SimpleNamespace(name=scope, meta={}, members=[SimpleNamespace(name=m, address="127.0.0.1") for m in members])
    tls = certificates.issue_all(inst, None)
    for name, c in tls["certs"].items():
        d = cfgdir / name / "tls"
        d.mkdir(mode=0o700, parents=True, exist_ok=True)
        for fname, content in (("ca.crt", tls["ca_cert"]), ("server.crt", c["cert"]), ("server.key", c["key"])):
            (d / fname).touch(mode=0o600)
            (d / fname).write_text(content)
    assert set(tls["certs"]) == {*members, etcd}, tls["certs"].keys()
    return tls


def run_a(n: int, workdir: Path) -> dict:
    name = f"{PREFIX}a-{n:02d}"
    net = f"pgaas-{name}"
    etcd = f"{net}-etcd"
    members = [f"{net}-0", f"{net}-1"]
    volumes = [f"{etcd}-data"] + [f"{m}-data" for m in members]
    clean(name)
    pw = {k: secrets.token_urlsafe(18) for k in ("superuser", "replication", "restapi")}
    ports = {m: (free_port(), free_port()) for m in members}
    cfgdir = workdir / name
    label = ["--label", f"pgaas.instance={name}"]
    try:
        cfgdir.mkdir(mode=0o700)
        for m in members:
            (cfgdir / m).mkdir(mode=0o700)
        tls = issue_tls(name, members, etcd, cfgdir)
        render_patroni(workdir, cfgdir, name, members, f"{etcd}:2379", pw, tls)
        t0 = time.monotonic()
        parallel([["network", "create", *label, "--label", "pgaas.component=postgres", net],
                  ["volume", "create", *label, "--label", "pgaas.component=etcd", volumes[0]],
                  *[["volume", "create", *label, "--label", "pgaas.component=postgres", "--label",
                     f"pgaas.member={m}", f"{m}-data"] for m in members]])
        runs = [["run", "-d", "--name", etcd, "--hostname", etcd, "--network", net,
                 "-v", f"{volumes[0]}:/var/lib/etcd", "-v", f"{cfgdir / etcd / 'tls'}:/etc/pgaas/tls:ro",
                 "--stop-timeout", "10", *label, "--label", "pgaas.component=etcd", IMAGE, *etcd_tls_command(etcd)]]
        for m in members:
            pg, api = ports[m]
            runs.append(["run", "-d", "--name", m, "--hostname", m, "--network", net,
                         "-p", f"127.0.0.1:{pg}:5432", "-p", f"127.0.0.1:{api}:8008",
                         "-v", f"{m}-data:/var/lib/postgresql/data",
                         "-v", f"{cfgdir / m / 'patroni.yml'}:/etc/pgaas/patroni.yml:ro",
                         "-v", f"{cfgdir / m / 'tls'}:/etc/pgaas/tls:ro", "--stop-timeout", "30",
                         *label, "--label", "pgaas.component=postgres", "--label", f"pgaas.member={m}",
                         IMAGE, "sh", "-c", MEMBER_TLS_START])
        parallel(runs)
        started = time.monotonic() - t0
        wait_streaming(ports[members[0]][0], pw["superuser"], t0 + BASELINE_TIMEOUT)
        return {"seconds": time.monotonic() - t0, "containers_started": started}
    except RunFailed as exc:
        raise RunFailed(f"{exc}\n{logs_tail([etcd, *members])}") from None
    finally:
        common.remove_leftovers(name)
        shutil.rmtree(cfgdir, ignore_errors=True)


# -- baseline b: initdb + pg_basebackup, bare podman, no Patroni ---------------------------------------------
def start_bare_pair(name: str, extra_opts: tuple[str, ...] = (), hostssl: bool = False) -> dict:
    """A primary (initdb + postgres) and a standby (pg_basebackup -R, then postgres) in bare podman, no Patroni,
    with the role's PostgreSQL parameters and initdb options (plus extra_opts, postgres -c pairs), both published on
    127.0.0.1; returns once the containers are started: {primary, standby, ports, password, started} (seconds).
    hostssl: the clients' line of pg_hba.conf is hostssl (the caller turns ssl on in extra_opts). Also
    bench/throughput.py's pair; the caller removes it (common.remove_leftovers(name))."""
    net = f"pgaas-{name}"
    primary, standby = f"{net}-0", f"{net}-1"
    volumes = [f"{primary}-data", f"{standby}-data"]
    clean(name)
    password = secrets.token_urlsafe(18)
    ports = {primary: free_port(), standby: free_port()}
    opts, initdb_opts = pg_settings()
    opts += list(extra_opts)
    postgres_cmd = " ".join(["exec", AS_POSTGRES, "postgres", "-D", PGDATA, *[f"'{o}'" for o in opts]])
    prep = ("set -e; install -d -o postgres -g postgres -m 2775 /run/postgresql; "
            "chown postgres:postgres /var/lib/postgresql/data; chmod 0700 /var/lib/postgresql/data; ")
    primary_sh = (prep + "umask 077; printf '%s' \"$PGAAS_PW\" > /run/pw; chown postgres /run/pw; "
                  f"{AS_POSTGRES} initdb -D {PGDATA} -U postgres --pwfile=/run/pw --auth-local=peer "
                  f"--auth-host=scram-sha-256 {' '.join(initdb_opts)} >/dev/null; rm -f /run/pw; "
                  f"printf 'host replication postgres 0.0.0.0/0 scram-sha-256\\n"
                  f"{'hostssl' if hostssl else 'host'} all all 0.0.0.0/0 scram-sha-256\\n' >> {PGDATA}/pg_hba.conf; "
                  + postgres_cmd)
    standby_sh = (prep + "export PGPASSWORD=\"$PGAAS_PW\"; "
                  f"until {AS_POSTGRES} pg_basebackup -h {primary} -U postgres -D {PGDATA} -R -X stream -c fast -w "
                  f"2>/dev/null; do rm -rf {PGDATA}; sleep 0.05; done; " + postgres_cmd)
    label = ["--label", f"pgaas.instance={name}"]
    t0 = time.monotonic()
    parallel([["network", "create", *label, net],
              *[["volume", "create", *label, v] for v in volumes]])
    parallel([["run", "-d", "--name", c, "--hostname", c, "--network", net, "-p", f"127.0.0.1:{ports[c]}:5432",
               "-v", f"{c}-data:/var/lib/postgresql/data", "-e", f"PGAAS_PW={password}", *label,
               "--entrypoint", "bash", IMAGE, "-c", sh]
              for c, sh in ((primary, primary_sh), (standby, standby_sh))])
    return {"primary": primary, "standby": standby, "ports": ports, "password": password,
            "started": time.monotonic() - t0}


def run_b(n: int) -> dict:
    name = f"{PREFIX}b-{n:02d}"
    pair = None
    try:
        t0 = time.monotonic()
        pair = start_bare_pair(name)
        wait_streaming(pair["ports"][pair["primary"]], pair["password"], t0 + BASELINE_TIMEOUT)
        return {"seconds": time.monotonic() - t0, "containers_started": pair["started"]}
    except RunFailed as exc:
        raise RunFailed(f"{exc}\n{logs_tail([f'pgaas-{name}-0', f'pgaas-{name}-1'])}") from None
    finally:
        common.remove_leftovers(name)


def logs_tail(containers: list[str]) -> str:
    out = []
    for c in containers:
        r = podman("logs", "--tail", "5", c)
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
    common.add_smoke(ap)
    args = ap.parse_args()
    if args.smoke:
        args.runs = 1
    if args.runs < 1:
        ap.error("--runs must be at least 1")
    if not common.require_image():
        return 2
    common.trap_signals()

    results: dict[str, list[dict]] = {"api": [], "a": [], "b": []}
    failures: dict[str, int] = {"api": 0, "a": 0, "b": 0}
    print(f"pgaas provisioning benchmark: {args.runs} run(s) of each kind, interleaved (api, a, b); "
          f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}", flush=True)
    common.smoke_note(args.smoke)
    common.note_other_containers()
    print("  api = POST /api/v1/instances -> job succeeded (leader writable, replica streaming)", flush=True)
    print("  a   = etcd + 2 Patroni, bare podman (role's Patroni config) -> standby streaming", flush=True)
    print("  b   = initdb primary + pg_basebackup standby, bare podman, no Patroni -> standby streaming", flush=True)

    def measure(cp: common.ControlPlane) -> None:
        for i in range(1, args.runs + 1):
            for kind, fn in (("api", lambda: run_api(cp, i)), ("a", lambda: run_a(i, cp.workdir)),
                             ("b", lambda: run_b(i))):
                try:
                    res = fn()
                except RunFailed as exc:
                    failures[kind] += 1
                    print(f"  run {i} {kind:<3}   FAILED: {exc}", flush=True)
                    continue
                results[kind].append(res)
                if kind == "api":
                    ph = res["phases"]
                    extra = (f"  (pickup {ph['queued -> started (worker pickup)']:.2f} s, playbook "
                             f"{ph['started -> finished (playbook run)']:.2f} s)")
                else:
                    extra = f"  (containers started at {res['containers_started']:.2f} s)"
                print(f"  run {i} {kind:<3} {res['seconds']:7.2f} s{extra}", flush=True)

    status = common.in_control_plane("provision", PREFIX, measure)
    print(common.load_line("at the end"))
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
          f"{' (interrupted: partial)' if status == 130 else ''}")
    return status or (1 if any(failures.values()) else 0)


if __name__ == "__main__":
    sys.exit(main())
