"""Wake-up packets (DS 2.1): exact layout, both timestamp byte orders, every reason code, the
signature checked independently with openssl, and the wakeup CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from pki import wakeup
from pki.testpki import TestPki
from pki.wakeup import WakeupReason
from tests.pki.pki_helpers import openssl, pki_cli

GW = "EDNT0116909060"
T = 1_342_177_280  # the DS example: 13 July 2012 11:01:20 UTC = 00 00 00 00 50 00 00 00 (big-endian)


KeyPair = tuple[ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey]


@pytest.fixture(scope="module")
def gwa_sig(test_pki: TestPki) -> KeyPair:
    public_key = test_pki.gwa.sig.cert.public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    return test_pki.gwa.sig.key, public_key


def test_layout_is_exactly_the_ds_table(gwa_sig: KeyPair) -> None:
    key, _ = gwa_sig
    pkt = wakeup.build(GW, key, timestamp=T)
    assert len(pkt) == 108
    assert pkt[0:2] == b"WU" and pkt[2] == 0x01
    # recipient: Sparte 0x0E, "DNT", block 0x01, serial 16909060 = 0x01020304
    assert pkt[3:12] == bytes.fromhex("0E444E540101020304")
    assert pkt[12:20] == bytes.fromhex("0000000050000000")
    assert pkt[20:32] == b"\x0b" * 12
    assert pkt[32] == 0x01 and pkt[33] == 0x0A
    assert pkt[34:44] == bytes.fromhex("04007F00070101040103")  # ecdsa-plain-SHA256
    assert len(pkt[44:]) == 64  # R || S, 32 bytes each on brainpoolP256r1


def test_little_endian_timestamp_option(gwa_sig: KeyPair) -> None:
    key, pub = gwa_sig
    pkt = wakeup.build(GW, key, timestamp=T, byteorder="little")
    assert pkt[12:20] == bytes.fromhex("0000005000000000")
    assert wakeup.verify(pkt, GW, pub, now=T, byteorder="little").valid
    # read with the wrong byte order the timestamp is far off: stale, never accepted
    assert wakeup.verify(pkt, GW, pub, now=T).reason is WakeupReason.STALE


def test_signature_verifies_with_openssl(gwa_sig: KeyPair, test_pki: TestPki, tmp_path: Path) -> None:
    key, _ = gwa_sig
    pkt = wakeup.build(GW, key, timestamp=T)
    r, s = int.from_bytes(pkt[44:76], "big"), int.from_bytes(pkt[76:108], "big")
    (tmp_path / "signed.bin").write_bytes(pkt[:32])
    (tmp_path / "sig.der").write_bytes(encode_dss_signature(r, s))
    openssl("x509", "-in", test_pki.gwa.sig.cert_path, "-pubkey", "-noout", "-out", tmp_path / "pub.pem")
    res = openssl("dgst", "-sha256", "-verify", tmp_path / "pub.pem", "-signature", tmp_path / "sig.der",
                  tmp_path / "signed.bin")
    assert b"Verified OK" in res.stdout


def test_openssl_made_signature_is_accepted(gwa_sig: KeyPair, test_pki: TestPki, tmp_path: Path) -> None:
    """Build the 32 signed bytes ourselves, let openssl sign them, assemble, verify."""
    key, pub = gwa_sig
    head = wakeup.build(GW, key, timestamp=T)[:44]
    (tmp_path / "signed.bin").write_bytes(head[:32])
    der = openssl("dgst", "-sha256", "-sign", test_pki.gwa.sig.key_path, tmp_path / "signed.bin").stdout
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

    r, s = decode_dss_signature(der)
    pkt = head + r.to_bytes(32, "big") + s.to_bytes(32, "big")
    assert wakeup.verify(pkt, GW, pub, now=T).valid


def test_reason_codes(gwa_sig: KeyPair, test_pki: TestPki) -> None:
    key, pub = gwa_sig
    pkt = wakeup.build(GW, key, timestamp=T)
    assert wakeup.verify(pkt, GW, pub, now=T + 300).reason is WakeupReason.OK
    assert wakeup.verify(pkt, "EDNT0116909061", pub, now=T).reason is WakeupReason.WRONG_RECIPIENT
    assert wakeup.verify(pkt, GW, pub, now=T + 301).reason is WakeupReason.STALE
    assert wakeup.verify(pkt, GW, pub, now=T - 301).reason is WakeupReason.STALE
    assert wakeup.verify(pkt, GW, pub, now=T + 3600, window=7200).valid
    other = test_pki.emts["emt1"].sig.cert.public_key()
    assert isinstance(other, ec.EllipticCurvePublicKey)
    assert wakeup.verify(pkt, GW, other, now=T).reason is WakeupReason.BAD_SIGNATURE


def test_every_bit_flip_is_rejected(gwa_sig: KeyPair) -> None:
    key, pub = gwa_sig
    pkt = wakeup.build(GW, key, timestamp=T)
    for i in range(len(pkt)):
        for bit in range(8):
            bad = bytearray(pkt)
            bad[i] ^= 1 << bit
            v = wakeup.verify(bytes(bad), GW, pub, now=T, window=10**12)
            assert not v.valid, (i, bit)


@pytest.mark.parametrize("length", [0, 1, 35, 44, 107, 109, 200])
def test_wrong_length_is_malformed(gwa_sig: KeyPair, length: int) -> None:
    key, pub = gwa_sig
    pkt = wakeup.build(GW, key, timestamp=T)
    data = (pkt + b"\x00" * 200)[:length]
    assert wakeup.verify(data, GW, pub, now=T).reason is WakeupReason.MALFORMED


def test_header_fields_are_checked(gwa_sig: KeyPair) -> None:
    key, pub = gwa_sig
    pkt = bytearray(wakeup.build(GW, key, timestamp=T))
    for offset, value in ((0, ord("X")), (2, 0x02), (25, 0x00), (32, 0x02), (33, 0x0B), (43, 0x09)):
        bad = bytearray(pkt)
        bad[offset] = value
        assert wakeup.verify(bytes(bad), GW, pub, now=T).reason is WakeupReason.MALFORMED, offset


def test_sha384_variant_and_p384_key() -> None:
    key = ec.generate_private_key(ec.BrainpoolP384R1())
    pkt = wakeup.build(GW, key, timestamp=T, hash_algorithm=hashes.SHA384())
    assert len(pkt) == 44 + 96 and pkt[43] == 0x04
    assert wakeup.verify(pkt, GW, key.public_key(), now=T).valid


def test_negative_timestamps_roundtrip(gwa_sig: KeyPair) -> None:
    key, pub = gwa_sig
    pkt = wakeup.build(GW, key, timestamp=-5)
    assert wakeup.parse(pkt).timestamp == -5
    assert wakeup.verify(pkt, GW, pub, now=0).valid


def test_cli_build_and_verify(test_pki: TestPki, tmp_path: Path) -> None:
    out = tmp_path / "wu.bin"
    sig = test_pki.gwa.sig
    res = pki_cli("wakeup", "build", "--gateway", GW, "--key", sig.key_path, "--time", str(T), "-o", out)
    assert res.exit_code == 0, res.output
    assert out.stat().st_size == 108 and json.loads(res.stdout)["bytes"] == 108
    assert b"PRIVATE" not in res.stdout_bytes
    ok = pki_cli("wakeup", "verify", out, "--gateway", GW, "--cert", sig.cert_path, "--now", str(T + 10))
    assert ok.exit_code == 0 and json.loads(ok.stdout)["reason"] == "ok"
    stale = pki_cli("wakeup", "verify", out, "--gateway", GW, "--cert", sig.cert_path, "--now", str(T + 10),
                    "--window", "5")
    assert stale.exit_code == 1 and json.loads(stale.stdout)["reason"] == "stale"
    wrong = pki_cli("wakeup", "verify", out, "--gateway", "EDNT0116909061", "--cert", sig.cert_path, "--now", str(T))
    assert wrong.exit_code == 1 and json.loads(wrong.stdout)["reason"] == "wrong_recipient"
    short = tmp_path / "short.bin"
    short.write_bytes(out.read_bytes()[:100])
    mal = pki_cli("wakeup", "verify", short, "--gateway", GW, "--cert", sig.cert_path, "--now", str(T))
    assert mal.exit_code == 1 and json.loads(mal.stdout)["reason"] == "malformed"
    bad_gw = pki_cli("wakeup", "build", "--gateway", "1EMH0005347102", "--key", sig.key_path, "-o", out)
    assert bad_gw.exit_code == 2  # a meter ID is not a gateway
    no_key = pki_cli("wakeup", "build", "--gateway", GW, "--key", tmp_path / "none.key", "-o", out)
    assert no_key.exit_code == 2 and "cannot read" in no_key.stderr

