"""Encryption of workflow payloads, per tenant (Temporal payload codec).

Every payload a gridgate client or worker sends to Temporal is sealed with AES-256-GCM under a key
derived (HKDF-SHA256) from GRIDGATE_MASTER_KEY and the tenant's namespace, so meter keys, meter
values and readout containers are never plain text in Temporal's store, and one tenant's key
cannot open another's payloads. The Temporal UI shows them through the codec endpoint
(``api/routers/codec.py``) to users allowed to read that tenant.

Wire format of an encoded payload: metadata ``encoding=binary/encrypted``,
``encryption-key-id=<namespace>/v1``; data = 12-byte nonce || ciphertext+tag of the serialized
original ``Payload``; the key id is authenticated as associated data.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from functools import lru_cache

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from temporalio.api.common.v1 import Payload
from temporalio.converter import DataConverter, PayloadCodec

ENCODING = b"binary/encrypted"
KEY_VERSION = "v1"


class PayloadKeyMismatch(ValueError):
    """A payload sealed for another namespace/key (never decrypted with the wrong key)."""


@lru_cache(maxsize=256)
def _derive(master: bytes, namespace: str) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=b"gridgate temporal payloads",
                info=f"{namespace}|{KEY_VERSION}".encode()).derive(master)


class TenantPayloadCodec(PayloadCodec):
    def __init__(self, master_key: bytes, namespace: str) -> None:
        self.key_id = f"{namespace}/{KEY_VERSION}".encode()
        self._aead = AESGCM(_derive(master_key, namespace))

    def __repr__(self) -> str:  # never show key material
        return f"TenantPayloadCodec({self.key_id.decode()})"

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        out = []
        for p in payloads:
            nonce = os.urandom(12)
            sealed = self._aead.encrypt(nonce, p.SerializeToString(), self.key_id)
            out.append(Payload(metadata={"encoding": ENCODING, "encryption-key-id": self.key_id},
                               data=nonce + sealed))
        return out

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        out = []
        for p in payloads:
            if p.metadata.get("encoding") != ENCODING:
                out.append(p)  # not ours (e.g. written before encryption was enabled)
                continue
            if p.metadata.get("encryption-key-id") != self.key_id:
                raise PayloadKeyMismatch("payload was sealed for another namespace or key version")
            try:
                plain = self._aead.decrypt(p.data[:12], p.data[12:], self.key_id)
            except InvalidTag:
                raise PayloadKeyMismatch("payload does not decrypt with this tenant's key") from None
            out.append(Payload.FromString(plain))
        return out


def data_converter(master_key: bytes, namespace: str) -> DataConverter:
    return DataConverter(payload_codec=TenantPayloadCodec(master_key, namespace))
