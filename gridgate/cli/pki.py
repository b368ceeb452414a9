"""``gridgate pki ...``: test PKI, test CA, certificate verification, CMS and wake-up packets.

Exit codes: 0 success/valid, 1 a well-formed input that is not valid (JSON reason on stdout),
2 unusable arguments or unreadable input (one line on stderr). Private keys are never printed.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer

if TYPE_CHECKING:  # the pki modules are imported by the commands that use them (quick --help)
    from pki.cms_enveloped import Cipher, KeyAgreement
    from pki.wakeup import ByteOrder

T = TypeVar("T")

app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)
testpki_app = typer.Typer(no_args_is_help=True, help="Create and extend a test SM-PKI on disk.")
testca_app = typer.Typer(no_args_is_help=True, help="Test CA service (stand-in for a commercial Sub-CA).")
wakeup_app = typer.Typer(no_args_is_help=True, help="Build and verify wake-up packets (DS 2.1).")
cms_app = typer.Typer(no_args_is_help=True, help="Seal and open CMS containers (DS 5).")
app.add_typer(testpki_app, name="testpki")
app.add_typer(testca_app, name="testca")
app.add_typer(wakeup_app, name="wakeup")
app.add_typer(cms_app, name="cms")


# The accepted option values, typed as the pki functions take them.
_BYTEORDERS: dict[str, ByteOrder] = {"big": "big", "little": "little"}
_CIPHERS: dict[str, Cipher] = {"gcm": "gcm", "cbc-cmac": "cbc-cmac"}
_KEY_AGREEMENTS: dict[str, KeyAgreement] = {"bsi": "bsi", "rfc5753": "rfc5753"}


def _die(message: str, code: int = 2) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _emit(obj: dict[str, Any]) -> None:
    typer.echo(json.dumps(obj))


def _parse_at(text: str | None) -> dt.datetime | None:
    if text is None:
        return None
    try:
        at = dt.datetime.fromisoformat(text)
    except ValueError:
        _die(f"--at {text!r} is not ISO 8601")
    return at if at.tzinfo else at.replace(tzinfo=dt.UTC)


def _load(what: str, fn: Callable[..., T], *args: Any) -> T:
    """Run a loader; unreadable/garbage input is exit 2 with one line, no traceback."""
    from pki.loader import LoadError

    try:
        return fn(*args)
    except LoadError as err:
        _die(f"{what}: {err.detail}")


# --------------------------------------------------------------------------- testpki


@testpki_app.command("init")
def testpki_init(
    directory: Annotated[Path, typer.Argument(help="Target directory (must be empty or absent)")],
    gateways: Annotated[int, typer.Option("--gateways", "-n", min=0, help="SMGW certificate triples")] = 0,
    base_url: Annotated[str, typer.Option(help="Base URL of the test CA (CRL distribution points)")] = (
        "http://127.0.0.1:8480"
    ),
    workers: Annotated[int | None, typer.Option(help="Processes for bulk issuance (default: CPUs)")] = None,
) -> None:
    """Create root CA, Sub-CA, GWA, two EMTs, N gateways and the CRLs in DIRECTORY."""
    from rich.progress import Progress

    from pki.testpki import init_test_pki

    started = time.perf_counter()
    try:
        with Progress(transient=True, disable=gateways < 200) as progress:
            task = progress.add_task("issuing gateway certificates", total=gateways)
            pki = init_test_pki(directory, gateways=gateways, base_url=base_url, workers=workers,
                                progress=lambda n: progress.update(task, completed=n))
    except FileExistsError as err:
        _die(str(err))
    _emit({"directory": str(pki.directory), "gateways": gateways, "base_url": base_url,
           "seconds": round(time.perf_counter() - started, 2)})


@testpki_app.command("issue")
def testpki_issue(
    directory: Annotated[Path, typer.Argument(help="Existing test PKI directory")],
    gateway_ids: Annotated[list[str] | None, typer.Argument(help="Gateway IDs (DIN 43849)")] = None,
    count: Annotated[int, typer.Option(help="Also issue the first COUNT gateways of the sequence")] = 0,
    force: Annotated[bool, typer.Option(help="Re-issue existing triples")] = False,
) -> None:
    """Issue TLS/SIG/ENC triples for gateways (idempotent unless --force)."""
    from pki.ids import InvalidDeviceId, parse_gateway_id
    from pki.testpki import TestPki

    try:
        pki = TestPki(directory)
        ids = [str(parse_gateway_id(g)) for g in gateway_ids or []]
    except (FileNotFoundError, InvalidDeviceId) as err:
        _die(str(err))
    issued = pki.issue_gateways(range(count), force=force) + pki.issue_gateways(gateway_ids=ids, force=force)
    _emit({"issued": len(issued), "first": issued[:3]})


@testpki_app.command("revoke")
def testpki_revoke(
    directory: Annotated[Path, typer.Argument()],
    cert: Annotated[Path, typer.Argument(help="Certificate to revoke")],
    reason: Annotated[str, typer.Option(help="CRL reason (RFC 5280 name)")] = "keyCompromise",
) -> None:
    """Revoke a certificate of the test PKI and republish the CRL."""
    from cryptography import x509

    from pki.loader import cert_file
    from pki.testpki import TestPki

    c = _load("certificate", cert_file, cert)
    try:
        pki = TestPki(directory)
        pki.revoke(c, reason=x509.ReasonFlags(reason))
    except (FileNotFoundError, ValueError) as err:
        _die(str(err))
    _emit({"revoked": f"{c.serial_number:x}"})


# --------------------------------------------------------------------------- testca


@testca_app.command("serve")
def testca_serve(
    directory: Annotated[Path, typer.Argument(help="Test PKI directory")],
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8480,
    token: Annotated[str | None, typer.Option(envvar="GRIDGATE_TESTCA_TOKEN", help="Bearer token for POST")] = None,
) -> None:
    """Serve CRLs, revocation and PKCS#10 issuance over HTTP (testing only)."""
    from pki.testca import TestCA

    if not (directory / "pki.json").exists():
        _die(f"{directory} is not a test PKI (run 'gridgate pki testpki init' first)")
    ca = TestCA(directory, host=host, port=port, token=token)
    typer.echo(f"test CA for {directory} at {ca.url}", err=True)
    with contextlib.suppress(KeyboardInterrupt):
        ca.serve_forever()


# --------------------------------------------------------------------------- verify


@app.command("verify")
def verify_cmd(
    cert: Annotated[Path, typer.Argument(help="End-entity certificate (PEM/DER)")],
    trust: Annotated[list[Path], typer.Option("--trust", help="Trust anchor(s)")],
    chain: Annotated[list[Path] | None, typer.Option("--chain", help="Intermediate certificates")] = None,
    crl: Annotated[list[Path] | None, typer.Option("--crl", help="CRLs to use (no CDP fetching)")] = None,
    purpose: Annotated[str | None, typer.Option(help="tls, sig or enc")] = None,
    at: Annotated[str | None, typer.Option(help="Validation time, ISO 8601 (default now)")] = None,
) -> None:
    """Validate CERT; print {"valid", "reason", "subject", "detail"}; exit 0 valid, 1 not, 2 bad input."""
    from pki.loader import certs_file, crls_file, read_bytes
    from pki.validation import Validator

    if purpose is not None and purpose not in ("tls", "sig", "enc"):
        _die("--purpose must be tls, sig or enc")
    when = _parse_at(at)
    data = _load("certificate", read_bytes, cert)
    anchors = _load("trust anchor", certs_file, trust)
    intermediates = _load("chain", certs_file, chain or [])
    crls = _load("CRL", crls_file, crl) if crl else None
    verdict = Validator(anchors, intermediates, crls=crls).validate(data, purpose, when)
    _emit(verdict.to_dict())
    raise typer.Exit(0 if verdict.valid else 1)


# --------------------------------------------------------------------------- wake-up


@wakeup_app.command("build")
def wakeup_build(
    gateway: Annotated[str, typer.Option(help="Recipient SMGW ID, e.g. EDNT0116909060")],
    key: Annotated[Path, typer.Option(help="GWA SIG private key")],
    out: Annotated[Path, typer.Option("-o", "--out", help="Output file")],
    time_: Annotated[int | None, typer.Option("--time", help="Unix time (default now)")] = None,
    byteorder: Annotated[str, typer.Option(help="Timestamp byte order: big or little")] = "big",
) -> None:
    """Build a signed wake-up packet."""
    from pki import wakeup
    from pki.ids import InvalidDeviceId
    from pki.loader import key_file

    if byteorder not in _BYTEORDERS:
        _die("--byteorder must be big or little")
    k = _load("key", key_file, key)
    try:
        pkt = wakeup.build(gateway, k, timestamp=time_, byteorder=_BYTEORDERS[byteorder])
    except InvalidDeviceId as err:
        _die(str(err))
    out.write_bytes(pkt)
    _emit({"gateway": gateway, "bytes": len(pkt), "out": str(out)})


@wakeup_app.command("verify")
def wakeup_verify(
    packet: Annotated[Path, typer.Argument(help="Wake-up packet file")],
    gateway: Annotated[str, typer.Option(help="Own SMGW ID")],
    cert: Annotated[Path, typer.Option(help="GWA SIG certificate")],
    now: Annotated[int | None, typer.Option(help="Unix time (default now)")] = None,
    window: Annotated[int, typer.Option(help="Allowed clock difference in seconds")] = 300,
    byteorder: Annotated[str, typer.Option(help="Timestamp byte order: big or little")] = "big",
) -> None:
    """Verify a wake-up packet as the SMGW would; exit 0 ok, 1 rejected, 2 bad input."""
    from cryptography.hazmat.primitives.asymmetric import ec

    from pki import wakeup
    from pki.loader import cert_file, read_bytes

    if byteorder not in _BYTEORDERS:
        _die("--byteorder must be big or little")
    data = _load("packet", read_bytes, packet)
    c = _load("certificate", cert_file, cert)
    pub = c.public_key()
    if not isinstance(pub, ec.EllipticCurvePublicKey):
        _die("certificate does not hold an EC key")
    verdict = wakeup.verify(data, gateway, pub, now=now, window=window, byteorder=_BYTEORDERS[byteorder])
    _emit(verdict.to_dict())
    raise typer.Exit(0 if verdict.valid else 1)


# --------------------------------------------------------------------------- CMS


@cms_app.command("seal")
def cms_seal(
    payload: Annotated[Path, typer.Argument(help="Payload file ('-' for stdin)")],
    sign_key: Annotated[Path, typer.Option(help="Sender SIG private key")],
    sign_cert: Annotated[Path, typer.Option(help="Sender SIG certificate")],
    recipient_cert: Annotated[Path, typer.Option(help="Recipient ENC certificate")],
    out: Annotated[Path, typer.Option("-o", "--out", help="Output file (DER)")],
    cipher: Annotated[str, typer.Option(help="gcm or cbc-cmac")] = "gcm",
    key_agreement: Annotated[str, typer.Option(help="bsi (DS OID) or rfc5753 (OpenSSL-readable)")] = "bsi",
) -> None:
    """SignedData(AuthEnvelopedData(CompressedData(PAYLOAD)))."""
    from pki import cms
    from pki.loader import cert_file, key_file, read_bytes

    if cipher not in _CIPHERS or key_agreement not in _KEY_AGREEMENTS:
        _die("--cipher must be gcm|cbc-cmac and --key-agreement bsi|rfc5753")
    data = sys.stdin.buffer.read() if str(payload) == "-" else _load("payload", read_bytes, payload)
    k = _load("sign key", key_file, sign_key)
    sc = _load("sign certificate", cert_file, sign_cert)
    rc = _load("recipient certificate", cert_file, recipient_cert)
    try:
        sealed = cms.seal(data, sign_key=k, sign_cert=sc, recipient_cert=rc,
                          cipher=_CIPHERS[cipher], key_agreement=_KEY_AGREEMENTS[key_agreement])
    except ValueError as err:
        _die(str(err))
    out.write_bytes(sealed)


@cms_app.command("open")
def cms_open(
    container: Annotated[Path, typer.Argument(help="CMS container (DER)")],
    key: Annotated[Path, typer.Option(help="Recipient ENC private key")],
    cert: Annotated[Path, typer.Option(help="Recipient ENC certificate")],
    trust: Annotated[list[Path], typer.Option("--trust", help="Trust anchor(s) for the signer")],
    chain: Annotated[list[Path] | None, typer.Option("--chain", help="Intermediate certificates")] = None,
    crl: Annotated[list[Path] | None, typer.Option("--crl", help="CRLs to use (no CDP fetching)")] = None,
    signer: Annotated[list[Path] | None, typer.Option("--signer", help="Known signer certificates")] = None,
    at: Annotated[str | None, typer.Option(help="Validation time, ISO 8601")] = None,
) -> None:
    """Verify, decrypt, decompress: payload to stdout (exit 0) or a JSON reason (exit 1)."""
    from pki import cms
    from pki.loader import cert_file, certs_file, crls_file, key_file, read_bytes
    from pki.validation import Validator

    when = _parse_at(at)
    data = _load("container", read_bytes, container)
    k = _load("key", key_file, key)
    c = _load("certificate", cert_file, cert)
    anchors = _load("trust anchor", certs_file, trust)
    intermediates = _load("chain", certs_file, chain or [])
    signers = _load("signer", certs_file, signer or [])
    crls = _load("CRL", crls_file, crl) if crl else None
    try:
        opened = cms.open(data, key=k, cert=c, validator=Validator(anchors, intermediates, crls=crls),
                          signer_certs=signers, at=when)
    except cms.CmsError as err:
        _emit(err.to_dict())
        raise typer.Exit(1) from None
    sys.stdout.buffer.write(opened.payload)
    sys.stdout.buffer.flush()
