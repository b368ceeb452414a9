"""TLS per TR-03116-3 against openssl s_client/s_server as the independent peer: a brainpool
handshake with mutual authentication works; RSA certificates, TLS 1.1, a non-listed curve, an
unknown CA and a revoked client certificate are refused."""

from __future__ import annotations

import datetime as dt
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from pki import tls
from pki.loader import cert_to_pem, key_to_pem
from pki.profile import Role, Usage, build_end_entity_certificate, subject_name
from pki.testpki import Entity, TestPki
from pki.validation import Reason
from tests.pki.pki_helpers import openssl

if TYPE_CHECKING:
    from tests.pki.conftest import FreshGateway

NOW = dt.datetime.now(dt.UTC)


class OurServer:
    """gridgate's side as TLS server: handshake, validate_peer, greet valid peers, close."""

    def __init__(self, ctx: ssl.SSLContext, pki: TestPki) -> None:
        self.ctx, self.pki = ctx, pki
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.results: list[dict[str, Any]] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            conn.settimeout(10)
            try:
                with self.ctx.wrap_socket(conn, server_side=True) as s:
                    verdict = tls.validate_peer(s, self.pki.validator())
                    cipher = s.cipher()
                    assert cipher is not None  # the handshake is done
                    self.results.append({"version": s.version(), "cipher": cipher[0], "verdict": verdict,
                                         "session_timeout": s.session.timeout if s.session else None})
                    if verdict.valid:
                        s.sendall(b"hello from gridgate\n")
            except (ssl.SSLError, OSError) as err:
                self.results.append({"error": err})
                conn.close()

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def server(test_pki: TestPki) -> Iterator[OurServer]:
    ctx = tls.server_context(test_pki.gwa.tls.cert_path, test_pki.gwa.tls.key_path, [test_pki.root_path],
                             intermediates=[test_pki.subca_path])
    srv = OurServer(ctx, test_pki)
    yield srv
    srv.close()


def s_client(port: int, cert: Path, key: Path, *extra: str | Path, ca: Path) -> subprocess.CompletedProcess[bytes]:
    return openssl("s_client", "-connect", f"127.0.0.1:{port}", "-cert", cert, "-key", key, "-CAfile", ca,
                   "-verify_return_error", "-ign_eof", *extra, input=b"", check=False)


def _wait(srv: OurServer, n: int = 1) -> dict[str, Any]:
    for _ in range(200):
        if len(srv.results) >= n:
            return srv.results[n - 1]
        threading.Event().wait(0.025)
    raise AssertionError("server saw no connection")


@contextmanager
def s_server(cert: Path, key: Path, ca: Path, *extra: str) -> Iterator[int]:
    sock = socket.create_server(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    proc = subprocess.Popen(["openssl", "s_server", "-accept", str(port), "-cert", str(cert), "-key", str(key),
                             "-CAfile", str(ca), "-Verify", "2", "-verify_return_error", "-naccept", "1", *extra],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        assert proc.stdout is not None
        for _ in range(50):  # openssl prints ACCEPT once it listens
            line = proc.stdout.readline()
            if b"ACCEPT" in line or not line:
                break
        yield port
    finally:
        proc.kill()
        proc.wait(timeout=10)


def _client_ctx(pki: TestPki, ent: Entity, **kw: Any) -> ssl.SSLContext:
    return tls.client_context(ent.tls.cert_path, ent.tls.key_path, [pki.root_path], intermediates=[pki.subca_path],
                              **kw)


def _connect(ctx: ssl.SSLContext, port: int) -> ssl.SSLSocket:
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    return ctx.wrap_socket(raw)


# --------------------------------------------------------------------------- policy of the contexts


def test_context_policy(test_pki: TestPki) -> None:
    ctx = tls.server_context(test_pki.gwa.tls.cert_path, test_pki.gwa.tls.key_path, [test_pki.root_path])
    assert ctx.minimum_version is ssl.TLSVersion.TLSv1_2
    assert ctx.verify_mode is ssl.CERT_REQUIRED
    assert ctx.options & ssl.OP_NO_RENEGOTIATION and ctx.options & ssl.OP_NO_TICKET
    tls12 = [c["name"] for c in ctx.get_ciphers() if c["protocol"] == "TLSv1.2"]
    assert sorted(tls12) == sorted(tls.TLS12_CIPHERS)
    if not tls.brainpool_tls13_available():
        assert ctx.maximum_version is ssl.TLSVersion.TLSv1_2
    with pytest.raises(ValueError, match="not allowed"):
        tls.server_context(test_pki.gwa.tls.cert_path, test_pki.gwa.tls.key_path, [test_pki.root_path],
                           group="X25519")


def test_tls13_detection_matches_the_openssl_build() -> None:
    # OpenSSL gained brainpool TLS 1.3 groups in 3.2; Python's one-curve setter must also reach them.
    if ssl.OPENSSL_VERSION_INFO < (3, 2):
        assert tls.brainpool_tls13_available() is False


def test_session_expiry_bound() -> None:
    start = NOW - dt.timedelta(hours=47, minutes=59)
    assert not tls.session_expired(start, NOW)
    assert tls.session_expired(NOW - dt.timedelta(hours=48), NOW)


# --------------------------------------------------------------------------- handshakes


def test_brainpool_mutual_handshake_with_s_client(server: OurServer, test_pki: TestPki) -> None:
    gw = test_pki.gateway(test_pki.gateway_ids()[0])
    res = s_client(server.port, gw.tls.cert_path, gw.tls.key_path, "-groups", "brainpoolP256r1", "-tls1_2",
                   ca=test_pki.root_path)
    seen = _wait(server)
    assert "error" not in seen, seen
    assert seen["version"] == "TLSv1.2" and seen["cipher"] == "ECDHE-ECDSA-AES128-GCM-SHA256"
    assert seen["verdict"].valid and "SMGW" in seen["verdict"].subject
    assert 0 < seen["session_timeout"] <= tls.MAX_SESSION_LIFETIME.total_seconds()
    assert b"hello from gridgate" in res.stdout
    assert b"Verification: OK" in res.stdout  # s_client verified our chain too


def test_cbc_suite_still_offered(server: OurServer, test_pki: TestPki) -> None:
    gw = test_pki.gateway(test_pki.gateway_ids()[0])
    res = s_client(server.port, gw.tls.cert_path, gw.tls.key_path, "-groups", "brainpoolP256r1", "-tls1_2",
                   "-cipher", "ECDHE-ECDSA-AES128-SHA256", ca=test_pki.root_path)
    assert _wait(server)["cipher"] == "ECDHE-ECDSA-AES128-SHA256"
    assert b"hello from gridgate" in res.stdout


def test_client_context_against_s_server(test_pki: TestPki) -> None:
    emt = test_pki.emts["emt1"]
    with s_server(emt.tls.cert_path, emt.tls.key_path, test_pki.chain_path, "-groups", "brainpoolP256r1") as port:
        gw = test_pki.gateway(test_pki.gateway_ids()[1])
        with _connect(_client_ctx(test_pki, gw), port) as s:
            assert s.version() == "TLSv1.2"
            verdict = tls.validate_peer(s, test_pki.validator(), expected_role=Role.EMT)
            assert verdict.valid
            wrong_role = tls.validate_peer(s, test_pki.validator(), expected_role=Role.GWA)
            assert wrong_role.reason is Reason.PROFILE_VIOLATION


# --------------------------------------------------------------------------- refusals


def test_tls11_client_is_refused(server: OurServer, test_pki: TestPki) -> None:
    gw = test_pki.gateway(test_pki.gateway_ids()[0])
    # SECLEVEL=0 so that the openssl client really offers TLS 1.1 (its own default forbids it)
    res = s_client(server.port, gw.tls.cert_path, gw.tls.key_path, "-tls1_1", "-cipher", "ALL:@SECLEVEL=0",
                   ca=test_pki.root_path)
    seen = _wait(server)
    assert "error" in seen and "unsupported protocol" in str(seen["error"]).lower(), seen
    assert b"hello" not in res.stdout


def test_tls11_server_is_refused(test_pki: TestPki) -> None:
    emt = test_pki.emts["emt1"]
    with s_server(emt.tls.cert_path, emt.tls.key_path, test_pki.chain_path, "-tls1_1", "-cipher",
                  "ALL:@SECLEVEL=0") as port:
        gw = test_pki.gateway(test_pki.gateway_ids()[0])
        with pytest.raises(ssl.SSLError):
            _connect(_client_ctx(test_pki, gw), port)


@pytest.mark.parametrize("group", ["P-256", "P-384", "brainpoolP384r1", "brainpoolP512r1"])
def test_our_contexts_offer_every_listed_group(test_pki: TestPki, group: str) -> None:
    """TR-03116-3's whole group list, not only the certificates' curve: a peer that prefers any
    listed group (here openssl s_server with server preference) gets it for the key exchange."""
    emt = test_pki.emts["emt1"]
    sock = socket.create_server(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    proc = subprocess.Popen(["openssl", "s_server", "-accept", str(port), "-cert", str(emt.tls.cert_path),
                             "-key", str(emt.tls.key_path), "-CAfile", str(test_pki.chain_path), "-Verify", "2",
                             "-naccept", "1", "-serverpref", "-groups", f"{group}:brainpoolP256r1"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        assert proc.stdout is not None
        for _ in range(50):
            if b"ACCEPT" in proc.stdout.readline():
                break
        gw = test_pki.gateway(test_pki.gateway_ids()[0])
        conn = _connect(_client_ctx(test_pki, gw), port)
        assert conn.version() == "TLSv1.2"
        conn.close()
        out = proc.communicate(timeout=10)[0].decode()
    finally:
        proc.kill()
    shared = next(x for x in out.splitlines() if x.startswith("Shared") and "groups" in x)
    # our client offered it (a one-group context would share only brainpoolP256r1)
    assert {"P-256": "secp256r1", "P-384": "secp384r1"}.get(group, group) in shared, shared


@pytest.mark.parametrize("groups", ["X25519", "secp521r1", "X448:ffdhe2048"])
def test_non_listed_curve_is_refused(server: OurServer, test_pki: TestPki, groups: str) -> None:
    gw = test_pki.gateway(test_pki.gateway_ids()[0])
    res = s_client(server.port, gw.tls.cert_path, gw.tls.key_path, "-groups", groups, "-tls1_2",
                   ca=test_pki.root_path)
    seen = _wait(server)
    assert "error" in seen, seen
    assert b"hello" not in res.stdout


def test_rsa_server_certificate_is_refused(test_pki: TestPki, tmp_path: Path) -> None:
    key = rsa.generate_private_key(65537, 2048)
    # an RSA key on purpose: the signature (like the profile) takes EC keys only
    cert = build_end_entity_certificate(
        subject=subject_name("RSA-SERVER.EMT"), public_key=key.public_key(), usage=Usage.TLS,  # type: ignore[arg-type]
        role=Role.EMT, issuer_cert=test_pki.subca, issuer_key=test_pki.ca_key("subca"),
        not_before=NOW - dt.timedelta(hours=1), not_after=NOW + dt.timedelta(days=1),
        crl_url=test_pki.config.crl_url("subca"), san=[x509.DNSName("rsa.test")])
    (tmp_path / "rsa.crt").write_bytes(cert_to_pem(cert))
    (tmp_path / "rsa.key").write_bytes(key_to_pem(key))
    with s_server(tmp_path / "rsa.crt", tmp_path / "rsa.key", test_pki.chain_path) as port:
        gw = test_pki.gateway(test_pki.gateway_ids()[0])
        with pytest.raises(ssl.SSLError):  # no ECDHE-ECDSA suite can use an RSA certificate
            _connect(_client_ctx(test_pki, gw), port)


def test_rsa_client_certificate_is_refused_after_handshake(server: OurServer, test_pki: TestPki,
                                                           tmp_path: Path) -> None:
    """OpenSSL's chain check accepts an RSA client certificate from our own Sub-CA; the SM-PKI
    validation after the handshake must refuse it."""
    key = rsa.generate_private_key(65537, 2048)
    # an RSA key on purpose: the signature (like the profile) takes EC keys only
    cert = build_end_entity_certificate(
        subject=subject_name("ETHE0116900000.SMGW"), public_key=key.public_key(), usage=Usage.TLS,  # type: ignore[arg-type]
        role=Role.SMGW, issuer_cert=test_pki.subca, issuer_key=test_pki.ca_key("subca"),
        not_before=NOW - dt.timedelta(hours=1), not_after=NOW + dt.timedelta(days=1),
        crl_url=test_pki.config.crl_url("subca"))
    (tmp_path / "rsa.crt").write_bytes(cert_to_pem(cert))
    (tmp_path / "rsa.key").write_bytes(key_to_pem(key))
    res = s_client(server.port, tmp_path / "rsa.crt", tmp_path / "rsa.key", "-groups", "brainpoolP256r1",
                   "-tls1_2", ca=test_pki.root_path)
    seen = _wait(server)
    assert "verdict" in seen and seen["verdict"].reason is Reason.FORBIDDEN_ALGORITHM, seen
    assert b"hello" not in res.stdout


def test_unknown_ca_client_is_refused(server: OurServer, test_pki: TestPki, foreign_pki: TestPki) -> None:
    gw = foreign_pki.gateway(foreign_pki.gateway_ids()[0])
    res = s_client(server.port, gw.tls.cert_path, gw.tls.key_path, "-groups", "brainpoolP256r1", "-tls1_2",
                   ca=test_pki.root_path)
    seen = _wait(server)
    assert "error" in seen and "certificate" in str(seen["error"]).lower(), seen
    assert b"hello" not in res.stdout


def test_unknown_ca_server_is_refused(test_pki: TestPki, foreign_pki: TestPki) -> None:
    emt = foreign_pki.emts["emt1"]
    with s_server(emt.tls.cert_path, emt.tls.key_path, foreign_pki.chain_path, "-groups", "brainpoolP256r1") as port:
        gw = test_pki.gateway(test_pki.gateway_ids()[0])
        with pytest.raises(ssl.SSLCertVerificationError):
            _connect(_client_ctx(test_pki, gw), port)


def test_revoked_client_is_refused(server: OurServer, test_pki: TestPki, fresh_gateway: FreshGateway) -> None:
    gw = fresh_gateway()
    test_pki.revoke(gw.tls.cert)
    res = s_client(server.port, gw.tls.cert_path, gw.tls.key_path, "-groups", "brainpoolP256r1", "-tls1_2",
                   ca=test_pki.root_path)
    seen = _wait(server)
    assert seen["verdict"].reason is Reason.REVOKED, seen
    assert b"hello" not in res.stdout


def test_revoked_client_refused_in_handshake_with_crls_in_context(test_pki: TestPki,
                                                                  fresh_gateway: FreshGateway) -> None:
    gw = fresh_gateway()
    test_pki.revoke(gw.tls.cert)
    ctx = tls.server_context(test_pki.gwa.tls.cert_path, test_pki.gwa.tls.key_path, [test_pki.root_path],
                             intermediates=[test_pki.subca_path],
                             crls=[test_pki.crl_path("root"), test_pki.crl_path("subca")])
    srv = OurServer(ctx, test_pki)
    try:
        s_client(srv.port, gw.tls.cert_path, gw.tls.key_path, "-groups", "brainpoolP256r1", "-tls1_2",
                 ca=test_pki.root_path)
        seen = _wait(srv)
        assert "error" in seen and "revoked" in str(seen["error"]).lower(), seen
    finally:
        srv.close()


# --------------------------------------------------------------------------- memory of idle sessions
def test_release_peer_chain_frees_what_the_client_sent_and_keeps_the_leaf(test_pki: TestPki) -> None:
    ctx = tls.server_context(test_pki.gwa.tls.cert_path, test_pki.gwa.tls.key_path, [test_pki.root_path],
                             intermediates=[test_pki.subca_path])
    sock = socket.create_server(("127.0.0.1", 0))
    seen: dict[str, Any] = {}

    def serve() -> None:
        conn, _ = sock.accept()
        with ctx.wrap_socket(conn, server_side=True) as s:
            seen["freed"] = tls.release_peer_chain(s)
            seen["again"] = tls.release_peer_chain(s)
            seen["leaf"] = s.getpeercert(binary_form=True)
            seen["verdict"] = tls.validate_peer(s, test_pki.validator(), expected_role=Role.SMGW)
            s.sendall(b"still talking\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    gw = test_pki.gateway(test_pki.gateway_ids()[0])
    try:
        with _connect(_client_ctx(test_pki, gw), sock.getsockname()[1]) as c:
            assert c.recv(64) == b"still talking\n"
        thread.join(10)
    finally:
        sock.close()
    # The client context has the Sub-CA in its store, so OpenSSL sends leaf + Sub-CA (+ root).
    assert seen["freed"] >= 1 and seen["again"] == 0
    assert seen["leaf"] == gw.tls.cert.public_bytes(serialization.Encoding.DER)
    assert seen["verdict"].valid


def test_release_peer_chain_leaves_client_side_connections_alone(test_pki: TestPki) -> None:
    emt = test_pki.emts["emt1"]
    with s_server(emt.tls.cert_path, emt.tls.key_path, test_pki.chain_path, "-groups", "brainpoolP256r1") as port:
        gw = test_pki.gateway(test_pki.gateway_ids()[1])
        with _connect(_client_ctx(test_pki, gw), port) as s:
            assert tls.release_peer_chain(s) == 0
            assert tls.validate_peer(s, test_pki.validator(), expected_role=Role.EMT).valid
