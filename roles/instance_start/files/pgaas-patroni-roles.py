#!/usr/bin/env python3
"""Print, as JSON, how each member's own Patroni sees itself (GET /patroni: role and state of its PostgreSQL, not
the DCS's possibly stale view) and "leader": the one member that runs as the primary and that its own /cluster
names leader, else null. Right after a restart, etcd still holds the keys of the members' previous lives for a
ttl, so /cluster alone can name a leader that will not be one.
usage: pgaas-patroni-roles.py NAME=URL...   (URL: http://address:api_port of the member's Patroni REST API; https with
the instance's TLS files under $PGAAS_TLS_DIR)"""
import glob
import json
import os
import ssl
import sys
import urllib.request


# Patroni's REST API takes HTTPS with a client certificate of the instance's CA: any of the instance's certificates
# on this host ($PGAAS_TLS_DIR/<container>/tls/) serves; none there, an instance from before TLS: plain http.
_TLS = next(iter(sorted(glob.glob(os.path.join(os.environ.get("PGAAS_TLS_DIR") or "/-", "*", "tls", "")))), None)
TLS = ssl.create_default_context(cafile=_TLS + "ca.crt") if _TLS else None
_ = TLS and TLS.load_cert_chain(_TLS + "server.crt", _TLS + "server.key")
SCHEME = "https" if TLS else "http"


def get(url):
    url = f"{SCHEME}://{url.split('://', 1)[-1]}"
    try:
        with urllib.request.urlopen(url, timeout=2, context=TLS) as resp:  # noqa: S310 (the members' Patroni REST API)
            return json.load(resp)
    except Exception:  # noqa: BLE001 - any failure means "not up yet"
        return None


members = dict(arg.split("=", 1) for arg in sys.argv[1:])
out = {"members": {}, "leader": None}
for name, url in members.items():
    me = get(f"{url}/patroni")
    out["members"][name] = {"role": me.get("role"), "state": me.get("state")} if me else None
primaries = [n for n, m in out["members"].items()
             if m and m["state"] == "running" and m["role"] in ("master", "primary")]
if len(primaries) == 1:
    view = get(f"{members[primaries[0]]}/cluster") or {}
    if [m.get("name") for m in view.get("members", []) if m.get("role") == "leader"] == primaries:
        out["leader"] = primaries[0]
print(json.dumps(out))
