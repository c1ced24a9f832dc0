"""The control plane's client of Patroni's REST API (read-only: /cluster, /patroni, /history).

https with the control plane's client certificate when the instance serves TLS (an SSLContext from
certificates.ClientTLS), plain http for an instance from before TLS. A member that does not answer gives None.
"""
from __future__ import annotations

import json
import urllib.request

from webapp.services import certificates
from webapp.store.models import Instance, Member


def context(inst: Instance, tls=None):
    """The SSLContext for inst: from tls (the app's certificates.ClientTLS), else from the one registered for the
    instance's key; None without TLS."""
    return tls.context(inst) if tls is not None else certificates.context_for(inst)


def get(member: Member, path: str, timeout: float, ctx=None):
    """GET path of a member's Patroni REST API; the JSON answer, or None when it does not answer."""
    url = f"{'https' if ctx is not None else 'http'}://{member.address}:{member.api_port}{path}"
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=ctx) as r:  # noqa: S310 (our own Patroni)
            return json.load(r)
    except (OSError, ValueError):
        return None


def first_answer(inst: Instance, path: str, timeout: float, tls=None):
    """GET path from the instance's members in order; the first answer, or None when no member answers."""
    ctx = context(inst, tls)
    for m in inst.members:
        data = get(m, path, timeout, ctx)
        if data is not None:
            return data
    return None
