#!/usr/bin/env python3
"""Print the cluster as the first member that answers sees it: {"port", "cluster", "history", "leader", "sync",
"members": {name: {role, state, timeline, lag}}, "errors"}, from GET https://127.0.0.1:PORT/cluster and /history of
Patroni's REST API (no credentials needed). "leader" is the running leader's name or null; "sync" the names of
the synchronous standbys. With --in-recovery NAME also report whether PostgreSQL in container NAME is in recovery
and streams ("recovery": {"in_recovery": bool|null, "receiver": str|null}), read through podman exec.
usage: pgaas-cluster.py [--in-recovery CONTAINER] PORT [PORT...]"""
import glob
import json
import os
import ssl
import subprocess
import sys
import urllib.request


# Patroni's REST API takes HTTPS with a client certificate of the instance's CA: any of the instance's certificates
# on this host ($PGAAS_TLS_DIR/<container>/tls/) serves; none there, an instance from before TLS: plain http.
_TLS = next(iter(sorted(glob.glob(os.path.join(os.environ.get("PGAAS_TLS_DIR") or "/-", "*", "tls", "")))), None)
TLS = ssl.create_default_context(cafile=_TLS + "ca.crt") if _TLS else None
_ = TLS and TLS.load_cert_chain(_TLS + "server.crt", _TLS + "server.key")
SCHEME = "https" if TLS else "http"

args = sys.argv[1:]
container = None
if args[:1] == ["--in-recovery"]:
    container, args = args[1], args[2:]
out = {"port": None, "cluster": None, "history": None, "leader": None, "sync": [], "members": {}, "errors": []}
for port in args:
    try:
        with urllib.request.urlopen(f"{SCHEME}://127.0.0.1:{port}/cluster", timeout=2, context=TLS) as resp:
            out["cluster"] = json.load(resp)
        with urllib.request.urlopen(f"{SCHEME}://127.0.0.1:{port}/history", timeout=2, context=TLS) as resp:
            out["history"] = json.load(resp)
        out["port"] = int(port)
        break
    except Exception as exc:  # noqa: BLE001 - any failure means "ask the next member"
        out["errors"].append(f"{port}: {exc}")
for m in (out["cluster"] or {}).get("members", []):
    role = m.get("role")
    out["members"][m.get("name")] = {"role": role, "state": m.get("state"), "timeline": m.get("timeline"),
                                     "lag": m.get("lag") if isinstance(m.get("lag"), int) else None}
    if role in ("leader", "master", "primary") and m.get("state") == "running":
        out["leader"] = m.get("name")
    if role == "sync_standby":
        out["sync"].append(m.get("name"))
if container:
    sql = ("SELECT json_build_object('in_recovery', pg_is_in_recovery(), "
           "'receiver', (SELECT status FROM pg_stat_wal_receiver))")
    out["recovery"] = {"in_recovery": None, "receiver": None}
    try:
        res = subprocess.run(["podman", "exec", "--user", "postgres", container, "psql", "-XAtq", "-c", sql],
                             capture_output=True, text=True, check=False, timeout=10)
        if res.returncode == 0:
            out["recovery"] = json.loads(res.stdout)
        else:
            out["errors"].append(res.stderr.strip()[-300:])
    except (OSError, ValueError, subprocess.TimeoutExpired) as exc:
        out["errors"].append(f"{container}: {exc}")
print(json.dumps(out))
