"""A small HTTP test CA over a test PKI directory: a stand-in for a commercial SM-PKI Sub-CA.

It publishes the CRLs at the distribution point URLs in the certificates, lets tests revoke a
certificate, and answers PKCS#10 certificate requests for renewal flows. It is NOT a CA for
production: no authentication beyond an optional bearer token, no request approval, no mutually
authenticated web service (the real Sub-CA interface of TR-03109-4 is not public).

Endpoints::

    GET  /crl/root.crl | /crl/subca.crl      DER CRL (application/pkix-crl)
    GET  /ca/root.crt | /ca/subca.crt | /ca/chain.pem
    POST /revoke     {"serial": "<hex>"} or {"certificate": "<PEM>"}, optional "reason"
    POST /certify?usage=tls|sig|enc          body: PKCS#10 (PEM or DER) -> PEM certificate
    GET  /health

Usable in-process: ``with TestCA(dir) as ca: ca.url`` (binds a free port by default).
"""

from __future__ import annotations

import hmac
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from pki.loader import PARSE_ERRORS, cert_to_pem, load_certificate
from pki.oids import curve_allowed
from pki.profile import END_ENTITY_ROLES, Role, Usage
from pki.testpki import TestPki

MAX_BODY = 64 * 1024
_REASONS = {r.value: r for r in x509.ReasonFlags}


class CsrRejected(ValueError):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def certify_csr(pki: TestPki, csr_bytes: bytes, usage: Usage | str) -> x509.Certificate:
    """Check a PKCS#10 request against the SM-PKI profile and issue the certificate.

    The request must be self-signed correctly, carry an EC key on an allowed curve, and name a
    subject C=DE / O=<the PKI's organisation> / CN=<id>.<ROLE> / SERIALNUMBER=<n>. SAN is taken
    from the request (required for GWA/GWH/EMT, dropped for SMGW)."""
    try:
        csr = (x509.load_pem_x509_csr(csr_bytes) if csr_bytes.lstrip().startswith(b"-----")
               else x509.load_der_x509_csr(csr_bytes))
    except PARSE_ERRORS:
        raise CsrRejected("malformed", "not a PKCS#10 request") from None
    try:
        usage = Usage(usage)
    except ValueError:
        raise CsrRejected("bad_request", "usage must be tls, sig or enc") from None
    if not csr.is_signature_valid:
        raise CsrRejected("bad_signature", "request signature does not verify")
    pub = csr.public_key()
    if not isinstance(pub, ec.EllipticCurvePublicKey) or not curve_allowed(pub.curve):
        raise CsrRejected("forbidden_algorithm", "request key must be EC on an allowed curve")
    subj = csr.subject

    def one(oid: x509.ObjectIdentifier) -> str | None:
        vals = subj.get_attributes_for_oid(oid)
        return str(vals[0].value) if len(vals) == 1 else None

    cn, org, c, sn = (one(NameOID.COMMON_NAME), one(NameOID.ORGANIZATION_NAME),
                      one(NameOID.COUNTRY_NAME), one(NameOID.SERIAL_NUMBER))
    if c != "DE" or org != pki.config.organisation:
        raise CsrRejected("profile_violation", f"rule subject.C/O: expected C=DE, O={pki.config.organisation}")
    if not sn or not sn.isdigit():
        raise CsrRejected("profile_violation", "rule subject.serialNumber: numeric SERIALNUMBER required")
    role: Role | None = None
    if cn and "." in cn:
        try:
            role = Role(cn.rsplit(".", 1)[1])
        except ValueError:
            role = None
    if role not in END_ENTITY_ROLES:
        raise CsrRejected("profile_violation", "rule subject.CN: CN must end in .GWA/.GWH/.EMT/.SMGW")
    assert role is not None
    san: list[x509.GeneralName] | None = None
    try:
        san = list(csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
    except x509.ExtensionNotFound:
        san = None
    if role is not Role.SMGW and not san:
        raise CsrRejected("profile_violation", f"rule san.required: SubjectAltName required for {role}")
    return pki.issue_certificate(subject=subj, public_key=pub, usage=usage, role=role,
                                 san=san if role is not Role.SMGW else None)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass  # tests run many requests; the stdlib logger writes to stderr

    def _send(self, status: int, body: bytes, ctype: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, obj: dict[str, Any]) -> None:
        self._send(status, json.dumps(obj).encode(), "application/json")

    def do_GET(self) -> None:
        path = urlparse(self.path).path
        d = self.server.directory
        files = {
            "/crl/root.crl": (d / "crl" / "root.crl", "application/pkix-crl"),
            "/crl/subca.crl": (d / "crl" / "subca.crl", "application/pkix-crl"),
            "/ca/root.crt": (d / "ca" / "root.crt", "application/x-pem-file"),
            "/ca/subca.crt": (d / "ca" / "subca.crt", "application/x-pem-file"),
            "/ca/chain.pem": (d / "ca" / "chain.pem", "application/x-pem-file"),
        }
        if path == "/health":
            self._json(200, {"status": "ok"})
        elif path in files:
            f, ctype = files[path]
            self._send(200, f.read_bytes(), ctype)
        else:
            self._json(404, {"error": "not_found"})

    def _authorised(self) -> bool:
        token = self.server.token
        if token is None:
            return True
        got = self.headers.get("Authorization", "")
        return hmac.compare_digest(got.encode(), f"Bearer {token}".encode())

    def do_POST(self) -> None:
        url = urlparse(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self._json(413, {"error": "too_large"})
            return
        body = self.rfile.read(length)
        if not self._authorised():
            self._json(401, {"error": "unauthorized"})
            return
        if url.path == "/revoke":
            self._revoke(body)
        elif url.path == "/certify":
            usage = parse_qs(url.query).get("usage", [""])[0]
            try:
                cert = certify_csr(self.server.pki, body, usage)
            except CsrRejected as err:
                self._json(400, {"error": err.reason, "detail": err.detail})
                return
            except PARSE_ERRORS as err:  # lazily parsed parts of the request
                self._json(400, {"error": "malformed", "detail": str(err)[:200]})
                return
            self._send(200, cert_to_pem(cert), "application/x-pem-file")
        else:
            self._json(404, {"error": "not_found"})

    def _revoke(self, body: bytes) -> None:
        try:
            req = json.loads(body or b"{}")
            reason = _REASONS[req.get("reason", "keyCompromise")]
            target: x509.Certificate | int
            if "certificate" in req:
                target = load_certificate(req["certificate"].encode())
            else:
                target = int(str(req["serial"]), 16)
        except (ValueError, KeyError, TypeError, AttributeError):
            self._json(400, {"error": "bad_request", "detail": "JSON with 'serial' (hex) or 'certificate' (PEM)"})
            return
        self.server.pki.revoke(target, reason=reason)
        serial = target.serial_number if isinstance(target, x509.Certificate) else target
        self._json(200, {"revoked": f"{serial:x}"})


class _Server(ThreadingHTTPServer):
    """Serves ``directory``; opens the TestPki on first use, so the server can bind before the PKI
    exists (the CRL and CA files are read from ``directory`` without opening it)."""

    daemon_threads = True

    def __init__(self, addr: tuple[str, int], directory: Path, token: str | None) -> None:
        super().__init__(addr, _Handler)
        self.directory = directory
        self.token = token
        self._pki: TestPki | None = None
        self._pki_lock = threading.Lock()

    @property
    def pki(self) -> TestPki:
        with self._pki_lock:
            if self._pki is None:
                self._pki = TestPki(self.directory)
            return self._pki


class TestCA:
    """The test CA service for ``directory``. ``port=0`` picks a free port (see :attr:`url`).

    The PKI directory may be created after the server is bound (start the server, read
    :attr:`url`, then :func:`~pki.testpki.init_test_pki` with ``base_url=ca.url``): it is only
    read when a request arrives."""

    __test__ = False

    def __init__(self, directory: str | Path, *, host: str = "127.0.0.1", port: int = 0,
                 token: str | None = None) -> None:
        self.directory = Path(directory)
        self._server = _Server((host, port), self.directory, token)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        host = host.decode() if isinstance(host, bytes) else host
        return f"http://{host}:{port}"

    def start(self) -> TestCA:
        self._thread = threading.Thread(target=self._server.serve_forever, name="testca", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._server.serve_forever()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> TestCA:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

