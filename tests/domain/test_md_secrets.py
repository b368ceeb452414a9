"""Meter master keys at rest: encrypted per tenant and bound to their meter."""

from __future__ import annotations

import pytest

from core.config import Settings
from domain.secrets import SecretBox, SecretUnreadable


def test_a_key_decrypts_only_for_its_meter_and_tenant(settings: Settings) -> None:
    alpha, beta = SecretBox(settings, "alpha"), SecretBox(settings, "beta")
    key = bytes(range(16))
    blob = alpha.encrypt(key, "1EMH0005347102")
    assert key not in blob and alpha.decrypt(blob, "1EMH0005347102") == key
    assert alpha.encrypt(key, "1EMH0005347102") != blob  # fresh nonce each time
    with pytest.raises(SecretUnreadable):
        alpha.decrypt(blob, "1EMH0005347103")
    with pytest.raises(SecretUnreadable):
        beta.decrypt(blob, "1EMH0005347102")
    with pytest.raises(SecretUnreadable):
        alpha.decrypt(b"\x02" + blob[1:], "1EMH0005347102")


def test_fingerprints_are_stable_keyed_and_reveal_nothing(settings: Settings) -> None:
    alpha, beta = SecretBox(settings, "alpha"), SecretBox(settings, "beta")
    key = bytes(16)
    assert alpha.fingerprint(key, "m") == alpha.fingerprint(key, "m")
    assert alpha.fingerprint(key, "m") != beta.fingerprint(key, "m")
    assert "alpha" in repr(alpha) and key.hex() not in repr(alpha)
