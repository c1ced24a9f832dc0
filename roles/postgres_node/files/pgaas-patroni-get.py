#!/usr/bin/env python3
"""Print {"<path>": <JSON answer or null>, ...} for GET http://127.0.0.1:PORT<path> of Patroni's REST API.
usage: pgaas-patroni-get.py PORT PATH..."""
import json
import sys
import urllib.request

port, paths = sys.argv[1], sys.argv[2:]
out = {}
for path in paths:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as resp:
            out[path] = json.load(resp)
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready yet"
        out[path] = None
        out.setdefault("errors", []).append(f"{path}: {exc}")
print(json.dumps(out))
