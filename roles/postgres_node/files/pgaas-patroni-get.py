#!/usr/bin/env python3
"""Print {"<path>": <JSON answer or null>, ...} for GET https://127.0.0.1:PORT<path> of Patroni's REST API.
With --containers a,b also report, under "exited", which of those containers are not running (so that a
wait can stop at once instead of timing out).
usage: pgaas-patroni-get.py [--containers NAME,NAME] PORT PATH..."""
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
containers = []
if args[:1] == ["--containers"]:
    containers = [c for c in args[1].split(",") if c]
    args = args[2:]
port, paths = args[0], args[1:]
out = {}
for path in paths:
    try:
        with urllib.request.urlopen(f"{SCHEME}://127.0.0.1:{port}{path}", timeout=2, context=TLS) as resp:
            out[path] = json.load(resp)
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready yet"
        out[path] = None
        out.setdefault("errors", []).append(f"{path}: {exc}")
if containers:
    cmd = ["podman", "ps", "--all", "--format", "json"]
    for name in containers:
        cmd += ["--filter", f"name=^{name}$"]
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    try:
        listed = json.loads(res.stdout or "[]")
    except ValueError:
        listed = []
    states = {(c.get("Names") or [""])[0]: str(c.get("State", "")).lower() for c in listed}
    out["exited"] = [c for c in containers if states.get(c, "missing") not in ("running", "created")]
print(json.dumps(out))
