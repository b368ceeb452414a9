"""Secrets at rest (meter master keys MK0): AES-256-GCM under a per-tenant key derived with HKDF
from the installation's master key. The ciphertext is bound to its tenant and object (associated
data), so a value copied to another meter or tenant does not decrypt.

Blob layout: version byte 0x01 | 12-byte nonce | ciphertext with 16-byte tag.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from functools import lru_cache

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from core.config import Settings
from core.errors import GridgateError

_VERSION = b"\x01"


class SecretUnreadable(GridgateError):
    status_code = 500
    code = "secret_unreadable"


@lru_cache(maxsize=64)
def _derive(master: bytes, tenant: str, purpose: str) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=b"gridgate secrets v1",
                info=f"{purpose}|{tenant}".encode()).derive(master)


class SecretBox:
    """Encrypts, decrypts and fingerprints one tenant's secrets of one purpose (e.g. ``mk0``)."""

    def __init__(self, settings: Settings, tenant: str, purpose: str = "mk0") -> None:
        master = settings.resolved_secret("master_key")
        self.tenant = tenant
        self._aead = AESGCM(_derive(master, tenant, purpose))
        self._mac_key = _derive(master, tenant, purpose + ":fingerprint")

    def __repr__(self) -> str:  # never show key material
        return f"SecretBox(tenant={self.tenant!r})"

    def _aad(self, object_id: str) -> bytes:
        return f"{self.tenant}|{object_id}".encode()

    def encrypt(self, plaintext: bytes, object_id: str) -> bytes:
        nonce = os.urandom(12)
        return _VERSION + nonce + self._aead.encrypt(nonce, plaintext, self._aad(object_id))

    def decrypt(self, blob: bytes, object_id: str) -> bytes:
        if len(blob) < 29 or blob[:1] != _VERSION:
            raise SecretUnreadable("stored secret has an unknown format")
        try:
            return self._aead.decrypt(blob[1:13], blob[13:], self._aad(object_id))
        except InvalidTag:
            raise SecretUnreadable(f"secret of {object_id} does not decrypt with this tenant's key") from None

    def fingerprint(self, plaintext: bytes, object_id: str) -> bytes:
        """A keyed fingerprint: equal for equal secrets, useless without the key."""
        return hmac.new(self._mac_key, self._aad(object_id) + b"|" + plaintext, hashlib.sha256).digest()
