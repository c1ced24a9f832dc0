"""The safe shortcut for a dead primary: release the leader key of a member whose container has exited.

Failover stays Patroni's. When a primary's container is SIGKILLed, Patroni on the standby waits for the leader
key's TTL to run out before it races for the lock. The control plane knows more than Patroni here: the provider
saw the container exit, so no process of that member is left to write anything. Then, and only then, the guard
deletes the leader key with an etcd v3 transaction that compares the key's value (the dead member's name) and its
mod revision (the exact key it read after seeing the exit). The standby's next loop (loop_wait) takes the lock
through Patroni's own race, with every check Patroni makes (synchronous state, lag, timeline).

Why it cannot make two primaries (docs/operations.md says it at length):
- the member whose key is deleted has no process: an exited container's PID 1 is gone and the kernel killed every
  other process of its PID namespace with it; a paused (frozen) or unresponsive container is never acted on;
- the transaction only succeeds while the key is still the one read after the exit was seen: if the member came
  back and took or renewed the key (a new put changes mod_revision), nothing is deleted;
- a member that restarts later starts PostgreSQL read-only and only promotes after it holds the key; it finds
  another leader and rejoins as a standby (pg_rewind);
- several workers may run the guard: the compare makes a second delete a no-op.

Framework-free: the store session factory, the provider and a config mapping are handed in.
"""
from __future__ import annotations

import base64
import json
import logging
import threading
import time
import urllib.request
from dataclasses import dataclass

from webapp.services import certificates

log = logging.getLogger(__name__)

NAMESPACE = "/pgaas/"   # Patroni's namespace (roles/postgres_node: postgres_node_patroni_namespace)


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _etcd(endpoint: str, path: str, body: dict, timeout: float, ctx=None) -> dict:
    req = urllib.request.Request(endpoint.rstrip("/") + path, data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(req, timeout=timeout, context=ctx) as r:  # noqa: S310 (the instance's own etcd)
        return json.load(r)


@dataclass
class LeaderKey:
    holder: str
    mod_revision: int
    lease: int


def read_leader(endpoint: str, scope: str, timeout: float = 1.0, ctx=None) -> LeaderKey | None:
    """The instance's leader key as etcd has it, or None when there is none."""
    out = _etcd(endpoint, "/v3/kv/range", {"key": _b64(f"{NAMESPACE}{scope}/leader")}, timeout, ctx)
    kvs = out.get("kvs") or []
    if not kvs:
        return None
    kv = kvs[0]
    return LeaderKey(base64.b64decode(kv.get("value", "")).decode(), int(kv.get("mod_revision", 0)),
                     int(kv.get("lease", 0)))


def delete_leader_if(endpoint: str, scope: str, key: LeaderKey, timeout: float = 1.0, ctx=None) -> bool:
    """Delete the leader key only if it still names key.holder at key.mod_revision (one etcd transaction)."""
    k = _b64(f"{NAMESPACE}{scope}/leader")
    out = _etcd(endpoint, "/v3/kv/txn", {
        "compare": [{"key": k, "target": "VALUE", "result": "EQUAL", "value": _b64(key.holder)},
                    {"key": k, "target": "MOD", "result": "EQUAL", "mod_revision": str(key.mod_revision)}],
        "success": [{"request_delete_range": {"key": k}}],
    }, timeout, ctx)
    return bool(out.get("succeeded"))


def dcs_endpoints(inst, provider) -> list[str]:
    """Client URLs of the instance's etcd: its own members when it has several, else the provider's answer."""
    members = (inst.meta or {}).get("etcd_members") or []
    scheme = "https" if certificates.is_active(inst) else "http"
    if members:
        return [f"{scheme}://{e['address']}:{int(e['client_port'])}" for e in members]
    found = list(provider.dcs_endpoints(inst.name))
    return [f"{scheme}://{e.split('://', 1)[-1]}" for e in found]


def etcd_context(inst):
    """TLS towards the instance's etcd: the control plane's client certificate, and etcd's server certificate
    checked against the instance's own CA (a CA per instance: only this instance's etcd holds a certificate it
    signed). The host name is not checked: the one etcd of a local instance is reached by its address on the
    podman network, which podman chooses after the certificate was issued."""
    return certificates.context_for(inst, check_hostname=False)


def release_dead_leader(inst, member: str, provider, timeout: float = 1.0) -> str:
    """Delete the leader key of `inst` if it names `member` and the provider says member's container has exited.
    Returns what happened, in words (for the log and the audit)."""
    if member not in {m.name for m in inst.members}:
        return f"{member} is not a member of {inst.name}"
    if not provider.member_exited(member):
        return f"{member} has not exited (running, paused or unknown): nothing done"
    endpoints = dcs_endpoints(inst, provider)
    if not endpoints:
        return "no etcd endpoint known: nothing done"
    last_error = ""
    ctx = etcd_context(inst)
    for endpoint in endpoints:
        try:
            key = read_leader(endpoint, inst.name, timeout, ctx)
            if key is None or key.holder != member:
                return f"the leader key names {key.holder if key else 'nobody'}, not {member}: nothing done"
            # the key was read after the exit was seen; check once more that the container did not come back
            # between the two (a restarted member could otherwise have renewed this very key)
            if not provider.member_exited(member):
                return f"{member} came back: nothing done"
            if delete_leader_if(endpoint, inst.name, key, timeout, ctx):
                return f"released the leader key of {member} (container exited; mod_revision {key.mod_revision})"
            return "the leader key changed meanwhile: nothing done"
        except (OSError, ValueError) as exc:
            last_error = f"{endpoint}: {exc}"
    return f"etcd unreachable ({last_error}): nothing done"


class LeaderGuard:
    """Watches member containers exit (the provider's event stream) and releases a dead leader's key.

    `session_factory()` is a context manager giving a store session; `config` is read at every event, so
    FAST_FAILOVER can be switched off live."""

    def __init__(self, session_factory, provider, config):
        self.session_factory = session_factory
        self.provider = provider
        self.config = config

    def enabled(self) -> bool:
        return bool(self.config.get("FAST_FAILOVER", True)) and self.provider.supports_exit_events

    def on_exit(self, instance: str, member: str) -> str | None:
        if not self.enabled():
            return None
        from sqlalchemy import select

        from webapp.services import audit
        from webapp.store.models import Instance

        with self.session_factory() as s:
            inst = s.scalar(select(Instance).where(Instance.name == instance))
            if inst is None or inst.status != "available":
                return None   # a deploy, restart or delete job owns the instance's containers right now
            started = time.monotonic()
            outcome = release_dead_leader(inst, member, self.provider,
                                          float(self.config.get("PROBE_TIMEOUT", 1.0)))
            log.info("leader guard: %s/%s: %s (%.2f s)", instance, member, outcome, time.monotonic() - started)
            if outcome.startswith("released"):
                audit.record(s, audit.Actor("pgaas-leader-guard"), "instance.release_dead_leader", "instance",
                             instance, "ok", outcome)
            return outcome

    def run(self, stop: threading.Event) -> None:
        """Until stop is set: follow the provider's exits; restart the stream if it ends."""
        while not stop.is_set():
            if not self.enabled():
                stop.wait(5)
                continue
            try:
                self.provider.watch_exits(stop, self._safe_on_exit)
            except Exception:
                log.exception("leader guard: the exit stream failed; restarting in 2 s")
            stop.wait(2)

    def _safe_on_exit(self, instance: str, member: str) -> None:
        try:
            self.on_exit(instance, member)
        except Exception:
            log.exception("leader guard: handling the exit of %s/%s failed", instance, member)
