#!/usr/bin/env python3
"""Print, as JSON, how each member's own Patroni sees itself (GET /patroni: role and state of its PostgreSQL, not
the DCS's possibly stale view) and "leader": the one member that runs as the primary and that its own /cluster
names leader, else null. Right after a restart, etcd still holds the keys of the members' previous lives for a
ttl, so /cluster alone can name a leader that will not be one.
usage: pgaas-patroni-roles.py NAME=URL...   (URL: http://address:api_port of the member's Patroni REST API)"""
import json
import sys
import urllib.request


def get(url):
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 (the members' Patroni REST API)
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
