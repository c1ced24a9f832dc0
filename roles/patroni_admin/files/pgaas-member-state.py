#!/usr/bin/env python3
"""Print one member's state as JSON: Patroni's /patroni and /cluster (GET, no credentials needed) from
https://127.0.0.1:PORT, and, for the settings named in EXPECTED (JSON {name: {"setting": s, "restart": bool}}),
pg_settings' value and pending_restart read through podman exec (with pg_is_in_recovery() and the WAL
receiver's status), and "waiting": the settings not applied yet
(neither at the expected value nor pending a restart).
usage: pgaas-member-state.py PORT CONTAINER [EXPECTED_JSON]"""
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

port, container = sys.argv[1], sys.argv[2]
expected = json.loads(sys.argv[3]) if len(sys.argv) > 3 else {}
out = {"patroni": None, "cluster": None, "settings": {}, "waiting": [], "errors": []}
for path in ("/patroni", "/cluster"):
    try:
        with urllib.request.urlopen(f"{SCHEME}://127.0.0.1:{port}{path}", timeout=2, context=TLS) as resp:
            out[path[1:]] = json.load(resp)
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready yet"
        out["errors"].append(f"{path}: {exc}")
names = ",".join("'" + n.replace("'", "''") + "'" for n in expected) or "NULL"
sql = ("SELECT json_build_object('in_recovery', pg_is_in_recovery(), "
       "'receiver', (SELECT status FROM pg_stat_wal_receiver), "
       "'settings', (SELECT coalesce(json_object_agg(name, json_build_array(setting, pending_restart)), '{}') "
       f"FROM pg_settings WHERE name IN ({names})))")
res = subprocess.run(["podman", "exec", "--user", "postgres", container, "psql", "-XAtq", "-c", sql],
                     capture_output=True, text=True, check=False)
if res.returncode == 0:
    pg = json.loads(res.stdout)
    out.update(in_recovery=pg["in_recovery"], receiver=pg["receiver"], settings=pg["settings"])
else:
    out.update(in_recovery=None, receiver=None)
    out["errors"].append(res.stderr.strip()[-500:])
mine = [m for m in (out["cluster"] or {}).get("members", []) if m.get("name") == container]
out["cluster_pending_restart"] = bool(mine and mine[0].get("pending_restart"))
if expected:
    patroni_pending = bool((out["patroni"] or {}).get("pending_restart"))
    for name, want in expected.items():
        setting, pending = out["settings"].get(name, [None, False])
        if setting is None:
            out["waiting"].append(name)
        elif not (setting == want["setting"] or pending or (want.get("restart") and patroni_pending)):
            out["waiting"].append(name)
    # Patroni publishes pending_restart to the other members' view (/cluster) on its next loop: wait for that too,
    # so what the control plane reads afterwards agrees with what this wait saw.
    if patroni_pending and not out["cluster_pending_restart"]:
        out["waiting"].append("pending_restart in /cluster")
print(json.dumps(out))
