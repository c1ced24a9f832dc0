"""Secrets at rest: Fernet (AES-128-CBC + HMAC-SHA256) with the control plane's key."""
from __future__ import annotations

import json
import secrets
import string

from cryptography.fernet import Fernet


class SecretBox:
    def __init__(self, key: str):
        self._fernet = Fernet(key.encode() if isinstance(key, str) else key)

    def seal(self, data: dict) -> str:
        return self._fernet.encrypt(json.dumps(data).encode()).decode()

    def open(self, token: str) -> dict:
        return json.loads(self._fernet.decrypt(token.encode()))


_ALPHABET = string.ascii_letters + string.digits


def generate_password(length: int = 24) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))
