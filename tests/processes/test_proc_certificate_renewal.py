"""Certificate renewal end to end: the gateway makes new keys and PKCS#10 requests
(``request_certificate_signing``), the test CA certifies them over HTTP, the certificates go into
the store, are installed and verified (the renewed TLS certificate on the gateway's next
connection), and the replaced ones are superseded with revocation requested. A Sub-CA that refuses
ends the process with its reason; a Sub-CA whose answer is lost is not asked twice for one key."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import select

from domain.audit.models import AuditEntry
from domain.certificates import renewal
from domain.certificates.models import Certificate
from domain.devices.models import Gateway
from pki import subca
from pki.testca import TestCA
from pki.validation import fingerprint
from tests.fleet import Fleet, run_process

if TYPE_CHECKING:
    from tests.conftest import ApiUser

T = "fleet"


@pytest.fixture
def test_ca(fleet: Fleet, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestCA]:
    """The fleet PKI's test CA over HTTP, configured as the tenant's Sub-CA."""
    with TestCA(fleet.pki.directory) as ca:
        monkeypatch.setenv(subca.SUBCA_URL_ENV, ca.url)
        yield ca


async def _certificates(fleet: Fleet, gid: str) -> list[Certificate]:
    async with fleet.ctx.sessions() as session:
        return list((await session.scalars(select(Certificate).join(Gateway, Gateway.id == Certificate.gateway_id)
                                           .where(Gateway.device_id == gid).order_by(Certificate.id))).all())


async def test_nothing_due(api: httpx.AsyncClient, fleet: Fleet, fleet_operator: ApiUser) -> None:
    (i,) = fleet.take(1)
    gid = fleet.gid(i)
    nothing = await run_process(api, fleet_operator.headers, T, "certificate_renewal", [gid], {"renew_before_days": 30})
    assert nothing["targets"][gid]["result"] == {"due": 0, "renewal": "not_due"}
    assert fleet.applied(gid) == {}


async def test_renewal_of_due_certificates(api: httpx.AsyncClient, fleet: Fleet, fleet_operator: ApiUser,
                                           test_ca: TestCA) -> None:
    (i,) = fleet.take(1)
    gid = fleet.gid(i)
    old = {c.usage: c for c in await _certificates(fleet, gid)}
    assert set(old) == {"tls", "sig", "enc"}

    done = await run_process(api, fleet_operator.headers, T, "certificate_renewal", [gid], {"renew_before_days": 730})
    target = done["targets"][gid]
    assert target["state"] == "succeeded", target
    result = target["result"]
    assert (result["due"], result["renewed"], result["superseded"], result["usages"]) == (3, 3, 3, "enc,sig,tls")

    # The store: the new certificates active, the old ones superseded with revocation requested.
    rows = await _certificates(fleet, gid)
    new = {c.usage: c for c in rows if c.status == "active"}
    assert set(new) == {"tls", "sig", "enc"} and not {c.fingerprint for c in new.values()} & {
        c.fingerprint for c in old.values()}
    for usage, c in new.items():
        assert result[f"{usage}_sha256"] == c.fingerprint and c.common_name == f"{gid}.SMGW"
        assert c.subject == old[usage].subject and c.not_after > old[usage].not_after
    for c in rows:
        if c.fingerprint in {o.fingerprint for o in old.values()}:
            assert c.status == "superseded" and c.revocation_requested_at is not None

    # The gateway: holds the new keys, presents the renewed TLS certificate, every command once.
    state = fleet.gateway_state(gid)
    assert {u: k["sha256"] for u, k in state.own_keys.items()} == {u: c.fingerprint for u, c in new.items()}
    assert not state.pending_keys
    assert fingerprint(fleet.simulated.creds.keys(gid, "tls").cert) == new["tls"].fingerprint
    conn = fleet.running_headend.node.registry.get(T, gid)
    assert conn is not None and conn.admission is not None and conn.admission.fingerprint == new["tls"].fingerprint
    assert fleet.applied(gid) == {"request_certificate_signing": 3, "install_certificates": 1}
    assert fleet.repeated(gid) == 0

    # The certificates are the gateway's from now on: a second run finds nothing to do at 60 days.
    again = await run_process(api, fleet_operator.headers, T, "certificate_renewal", [gid])
    assert again["targets"][gid]["result"] == {"due": 0, "renewal": "not_due"}


async def test_sub_ca_refusal_ends_the_process_with_its_reason(api: httpx.AsyncClient, fleet: Fleet,
                                                               fleet_operator: ApiUser,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    (i,) = fleet.take(1)
    gid = fleet.gid(i)
    with TestCA(fleet.pki.directory, token="only-for-the-real-gwa") as ca:
        monkeypatch.setenv(subca.SUBCA_URL_ENV, ca.url)
        done = await run_process(api, fleet_operator.headers, T, "certificate_renewal", [gid],
                                 {"renew_before_days": 730, "usages": ["sig"]})
    target = done["targets"][gid]
    assert target["state"] == "failed" and target["error_type"] == "subca_refused", target
    assert target["error_message"] == (f"certify_request/sig: the Sub-CA refused the sig request of {gid}: "
                                       f"HTTP 401 unauthorized")
    assert all(c.status == "active" and c.revocation_requested_at is None for c in await _certificates(fleet, gid))
    assert fleet.applied(gid) == {"request_certificate_signing": 1}  # nothing installed


class _ScriptedSubCa:
    """In front of the test CA, one behaviour per /certify call: ``forward``; ``lose`` (forwarded, the
    CA issues, the answer is lost: the connection closes without a response); ``refuse`` (not
    forwarded, 400 profile_violation). ``with _ScriptedSubCa(...) as url`` serves it."""

    def __init__(self, upstream: str, script: list[str]) -> None:
        self.upstream, self.script, self.calls = upstream, script, 0
        scripted = self  # the handler's state lives here

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(inner) -> None:
                body = inner.rfile.read(int(inner.headers.get("Content-Length") or 0))
                what = scripted.script[scripted.calls] if scripted.calls < len(scripted.script) else "forward"
                scripted.calls += 1
                if what == "refuse":
                    status, content = 400, b'{"error": "profile_violation", "detail": "rule subject.O"}'
                else:
                    resp = httpx.post(scripted.upstream + inner.path, content=body, timeout=10)
                    status, content = resp.status_code, resp.content
                if what == "lose":
                    inner.close_connection = True
                    inner.connection.close()
                    return
                inner.send_response(status)
                inner.send_header("Content-Length", str(len(content)))
                inner.end_headers()
                inner.wfile.write(content)

        self._http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._http.daemon_threads = True

    def __enter__(self) -> str:
        threading.Thread(target=self._http.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self._http.server_address[1]}"

    def __exit__(self, *exc: object) -> None:
        self._http.shutdown()
        self._http.server_close()


async def test_certificates_obtained_before_a_refusal_are_retired(api: httpx.AsyncClient, fleet: Fleet,
                                                                  fleet_operator: ApiUser, test_ca: TestCA,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """ENC is certified, SIG refused: nothing is installed, the new ENC certificate is retired (the old
    one stays active and due), so the next run renews both."""
    (i,) = fleet.take(1)
    gid = fleet.gid(i)
    old = {c.usage: c.fingerprint for c in await _certificates(fleet, gid)}
    with _ScriptedSubCa(test_ca.url, ["forward", "refuse"]) as url:
        monkeypatch.setenv(subca.SUBCA_URL_ENV, url)
        done = await run_process(api, fleet_operator.headers, T, "certificate_renewal", [gid],
                                 {"renew_before_days": 730, "usages": ["enc", "sig"]})
    target = done["targets"][gid]
    assert target["state"] == "failed" and target["error_type"] == "subca_refused", target
    assert target["error_message"].endswith("HTTP 400 profile_violation: rule subject.O")
    rows = await _certificates(fleet, gid)
    active = {c.usage: c.fingerprint for c in rows if c.status == "active"}
    assert active == old
    retired = [c for c in rows if c.status == "retired"]
    assert len(retired) == 1 and retired[0].usage == "enc" and retired[0].revocation_requested_at is not None
    assert fleet.applied(gid) == {"request_certificate_signing": 2}

    monkeypatch.setenv(subca.SUBCA_URL_ENV, test_ca.url)
    again = await run_process(api, fleet_operator.headers, T, "certificate_renewal", [gid],
                              {"renew_before_days": 730, "usages": ["enc", "sig"]})
    assert again["targets"][gid]["state"] == "succeeded", again["targets"][gid]
    assert fleet.applied(gid) == {"request_certificate_signing": 4, "install_certificates": 1}


async def test_lost_sub_ca_answer_is_not_requested_again_for_the_same_key(api: httpx.AsyncClient, fleet: Fleet,
                                                                          fleet_operator: ApiUser,
                                                                          test_ca: TestCA,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    (i,) = fleet.take(1)
    gid = fleet.gid(i)
    proxy = _ScriptedSubCa(test_ca.url, ["lose"])
    with proxy as url:
        monkeypatch.setenv(subca.SUBCA_URL_ENV, url)
        done = await run_process(api, fleet_operator.headers, T, "certificate_renewal", [gid],
                                 {"renew_before_days": 730, "usages": ["enc"]})
    target = done["targets"][gid]
    assert target["state"] == "succeeded", target
    assert proxy.calls == 2  # the lost request was not sent again ...
    assert fleet.applied(gid) == {"request_certificate_signing": 2, "install_certificates": 1}  # ... a new key was
    new = [c for c in await _certificates(fleet, gid) if c.usage == "enc" and c.status == "active"]
    assert len(new) == 1 and new[0].fingerprint == target["result"]["enc_sha256"]
    async with fleet.ctx.sessions() as session:
        actions = (await session.scalars(select(AuditEntry.action).where(
            AuditEntry.object_type == renewal.REQUEST).order_by(AuditEntry.id))).all()
    assert actions[-4:] == ["submit", "abandon", "submit", "issue"]


async def test_certify_step_is_idempotent(fleet: Fleet, test_ca: TestCA) -> None:
    """Repeating the step with the same request: the stored certificate, no second certificate."""
    (i,) = fleet.take(1)
    gid = fleet.gid(i)
    old = next(c for c in await _certificates(fleet, gid) if c.usage == "sig")
    key = ec.generate_private_key(ec.BrainpoolP256R1())
    csr = (x509.CertificateSigningRequestBuilder().subject_name(x509.load_der_x509_certificate(old.der).subject)
           .sign(key, hashes.SHA256()))
    pem = csr.public_bytes(serialization.Encoding.PEM).decode()

    class Counting(subca.HttpTestSubCa):
        calls = 0

        async def certify(self, csr_der: bytes, usage: str) -> bytes:
            Counting.calls += 1
            return await super().certify(csr_der, usage)

    ca = Counting(test_ca.url)
    first = await renewal.certify_gateway_request(fleet.ctx.sessions, fleet.ctx, gid, "sig", pem, old.fingerprint,
                                                  subca=ca)
    second = await renewal.certify_gateway_request(fleet.ctx.sessions, fleet.ctx, gid, "sig", pem, old.fingerprint,
                                                   subca=ca)
    assert (first.status, second.status, Counting.calls) == ("issued", "already_issued", 1)
    assert first.fingerprint == second.fingerprint
    other = (x509.CertificateSigningRequestBuilder().subject_name(x509.Name.from_rfc4514_string(
        "CN=EXXX0000000000.SMGW,O=SM-Test-PKI-DE,C=DE")).sign(key, hashes.SHA256()))
    with pytest.raises(renewal.RenewalRefused) as err:
        await renewal.certify_gateway_request(fleet.ctx.sessions, fleet.ctx, gid, "sig",
                                              other.public_bytes(serialization.Encoding.PEM).decode(), subca=ca)
    assert err.value.code == "malformed" and Counting.calls == 1
