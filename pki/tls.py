"""TLS contexts per TR-03116-3 section 4 for both sides of a connection, and validation of the
peer certificate after the handshake with the SM-PKI :class:`~pki.validation.Validator`.

What is enforced, and how (Python's ``ssl`` on OpenSSL 3.0 exposes no groups *list* setter):

* TLS 1.2 minimum (``minimum_version``); TLS 1.1 and below are refused.
* TLS 1.2 suites exactly ECDHE-ECDSA with AES128-SHA256, AES128-GCM-SHA256, AES256-SHA384,
  AES256-GCM-SHA384 (``set_ciphers``).
* Key-exchange groups: exactly the TR-03116-3 list brainpoolP256r1, brainpoolP384r1,
  brainpoolP512r1, secp256r1, secp384r1, with the context's ``group`` first (preferred). Python
  has no groups-list setter, so the list is set with OpenSSL's ``SSL_CTX_set1_groups_list`` on the
  context (:func:`_set_groups_list`, CPython layout, checked); where that is not possible the
  context falls back to the single ``group`` (``set_ecdh_curve``). A peer offering only other
  groups is refused. In TLS 1.2 the client's supported_groups list also bounds the curve of the
  server's ECDSA certificate, so the list must contain the certificates' curve (brainpoolP256r1
  for SM-PKI end entities).
* Mutual authentication (``CERT_REQUIRED`` on both sides), OpenSSL chain check to the anchors,
  then :func:`validate_peer` (profile, algorithms, key usage, revocation via CRL).
* Renegotiation off (``OP_NO_RENEGOTIATION``); compression off; session tickets off, so
  resumption only uses OpenSSL's server session cache (its default timeout, far below 48 h;
  Python offers no setter). Connections themselves must be closed by their owner after
  :data:`MAX_SESSION_LIFETIME` (see :func:`session_expired`).
* TLS 1.3 only if a real in-memory TLS 1.3 handshake over a brainpool group succeeds on this
  build (:func:`brainpool_tls13_available`); OpenSSL 3.0 has no brainpool TLS 1.3 groups, so
  contexts are TLS 1.2 only there.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import os
import ssl
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from pki.loader import PARSE_ERRORS, cert_to_pem, key_to_pem
from pki.profile import Role, common_name_of, role_of_cn
from pki.validation import Reason, Validator, Verdict

# Server preference order: GCM first (TR-03116-3: servers pick GCM or use encrypt-then-MAC).
TLS12_CIPHERS = (
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-AES128-SHA256",
    "ECDHE-ECDSA-AES256-SHA384",
)
ALLOWED_GROUPS = ("brainpoolP256r1", "brainpoolP384r1", "brainpoolP512r1", "secp256r1", "secp384r1")
# OpenSSL short names where they differ from the TLS group names.
_OPENSSL_CURVE_NAME = {"secp256r1": "prime256v1"}
DEFAULT_GROUP = "brainpoolP256r1"
MAX_SESSION_LIFETIME = dt.timedelta(hours=48)

PathLike = str | os.PathLike[str]


_SSL_CTRL_SET_GROUPS_LIST = 92  # SSL_CTX_set1_groups_list is SSL_CTX_ctrl(ctx, 92, 0, "a:b:c")
_OPENSSL_GROUP_NAME = {"secp256r1": "P-256", "secp384r1": "P-384"}


@functools.cache
def _libssl() -> Any:
    """The OpenSSL that CPython's ``_ssl`` is linked against, through ctypes (None if unreachable)."""
    import ctypes

    try:
        import _ssl

        lib = ctypes.CDLL(_ssl.__file__)
        lib.SSL_CTX_ctrl.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_long, ctypes.c_void_p]
        lib.SSL_CTX_ctrl.restype = ctypes.c_long
        lib.SSL_get_SSL_CTX.argtypes = [ctypes.c_void_p]
        lib.SSL_get_SSL_CTX.restype = ctypes.c_void_p
        lib.SSL_get_peer_cert_chain.argtypes = [ctypes.c_void_p]
        lib.SSL_get_peer_cert_chain.restype = ctypes.c_void_p
        lib.OPENSSL_sk_pop.argtypes = [ctypes.c_void_p]
        lib.OPENSSL_sk_pop.restype = ctypes.c_void_p
        lib.X509_free.argtypes = [ctypes.c_void_p]
        lib.X509_free.restype = None
    except (OSError, AttributeError):
        return None
    return lib


def _field(obj: object, index: int) -> int | None:
    """The ``index``-th pointer after the object header of a CPython object (PySSLContext holds
    its ``SSL_CTX *`` at 0; PySSLSocket holds its socket weakref at 0 and its ``SSL *`` at 1)."""
    import ctypes

    return ctypes.c_void_p.from_address(id(obj) + (2 + index) * ctypes.sizeof(ctypes.c_void_p)).value


def ssl_ctx_ctrl(ctx: ssl.SSLContext) -> Callable[..., int] | None:
    """OpenSSL's ``SSL_CTX_ctrl`` bound to the ``SSL_CTX *`` of ``ctx``, for the settings Python's
    ``ssl`` has no setter for; None where it cannot be reached. Callers check what the call
    answers before relying on it."""
    lib = _libssl()
    ptr = _field(ctx, 0) if lib is not None and isinstance(ctx, ssl.SSLContext) else None
    if not ptr:
        return None

    def call(cmd: int, larg: int, parg: Any = None) -> int:
        return int(lib.SSL_CTX_ctrl(ptr, cmd, larg, parg))

    return call


def release_peer_chain(conn: ssl.SSLObject | ssl.SSLSocket) -> int:
    """Free the intermediate certificates the peer sent, once the handshake has verified them:
    OpenSSL keeps them (parsed, ~14 KB each with a brainpool key) for the life of the connection,
    though nothing reads them again; the leaf (``getpeercert``) stays. Returns how many were
    freed. Reaches the ``SSL *`` behind ``conn`` only after checking CPython's object layout (the
    field after it is ``conn.context``) and that it belongs to that context's ``SSL_CTX``
    (``SSL_get_SSL_CTX``); otherwise does nothing."""
    lib = _libssl()
    sslsock = getattr(conn, "_sslobj", None)
    if lib is None or sslsock is None or not conn.server_side:
        return 0
    ctx = conn.context
    ctx_ptr = _field(ctx, 0) if isinstance(ctx, ssl.SSLContext) else None
    # Layout check from Python's side first (PySSLSocket: socket weakref, SSL *, its context),
    # then from OpenSSL's: the SSL * must belong to that context's SSL_CTX.
    if not ctx_ptr or _field(sslsock, 2) != id(ctx):
        return 0
    ssl_ptr = _field(sslsock, 1)
    if not ssl_ptr or lib.SSL_get_SSL_CTX(ssl_ptr) != ctx_ptr:
        return 0
    # Server side: the stack holds only what followed the leaf (OpenSSL moved the leaf to the
    # session's peer field). Freeing through the stack's own reference is what SSL_free would do.
    chain = lib.SSL_get_peer_cert_chain(ssl_ptr)
    freed = 0
    while chain:
        x = lib.OPENSSL_sk_pop(chain)
        if not x:
            break
        lib.X509_free(x)
        freed += 1
    return freed


def _set_groups_list(ctx: ssl.SSLContext, groups: Sequence[str]) -> bool:
    """Set the key-exchange groups of ``ctx`` to ``groups`` (OpenSSL names). True when set."""
    import ctypes

    ctrl = ssl_ctx_ctrl(ctx)
    names = ":".join(_OPENSSL_GROUP_NAME.get(g, g) for g in groups).encode()
    return ctrl is not None and ctrl(_SSL_CTRL_SET_GROUPS_LIST, 0, ctypes.c_char_p(names)) == 1


def _base_context(
    protocol: int,
    *,
    cert: PathLike,
    key: PathLike,
    trust: Sequence[PathLike],
    intermediates: Sequence[PathLike],
    crls: Sequence[PathLike],
    group: str,
    tls13: bool | None,
    key_password: bytes | None,
) -> ssl.SSLContext:
    if group not in ALLOWED_GROUPS:
        raise ValueError(f"group {group!r} not allowed by TR-03116-3 (allowed: {', '.join(ALLOWED_GROUPS)})")
    if not trust:
        raise ValueError("at least one trust anchor is required (mutual authentication)")
    ctx = ssl.SSLContext(protocol)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    allow13 = brainpool_tls13_available() if tls13 is None else tls13
    ctx.maximum_version = ssl.TLSVersion.TLSv1_3 if allow13 else ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(":".join(TLS12_CIPHERS))
    ctx.set_ecdh_curve(_OPENSSL_CURVE_NAME.get(group, group))
    _set_groups_list(ctx, [group, *(g for g in ALLOWED_GROUPS if g != group)])
    ctx.options |= ssl.OP_NO_RENEGOTIATION | ssl.OP_NO_COMPRESSION | ssl.OP_NO_TICKET
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.check_hostname = False  # identity is checked on the SM-PKI certificate by validate_peer
    ctx.verify_flags |= ssl.VERIFY_X509_STRICT
    ctx.load_cert_chain(os.fspath(cert), os.fspath(key), password=key_password)
    for t in trust:
        ctx.load_verify_locations(cafile=os.fspath(t))
    # Intermediates go into the store too: OpenSSL then sends leaf + Sub-CA to the peer and can
    # complete chains of peers that send only their leaf. Anchoring still requires the root.
    for i in intermediates:
        ctx.load_verify_locations(cafile=os.fspath(i))
    if crls:
        # Optional defence in depth: OpenSSL refuses revoked peers during the handshake. The
        # context must be rebuilt when the CRLs are refreshed; validate_peer stays authoritative.
        _load_crls(ctx, [Path(c) for c in crls])
        ctx.verify_flags |= ssl.VERIFY_CRL_CHECK_CHAIN
    return ctx


def _load_crls(ctx: ssl.SSLContext, paths: Sequence[Path]) -> None:
    """``cadata`` takes certificates only; a PEM *file* may hold CRLs (X509_load_cert_crl_file)."""
    from cryptography.hazmat.primitives import serialization

    pem = b""
    for path in paths:
        data = path.read_bytes()
        pem += data if data.lstrip().startswith(b"-----BEGIN") else \
            x509.load_der_x509_crl(data).public_bytes(serialization.Encoding.PEM)
    with tempfile.NamedTemporaryFile(suffix=".pem") as fh:
        fh.write(pem)
        fh.flush()
        ctx.load_verify_locations(cafile=fh.name)


def server_context(
    cert: PathLike,
    key: PathLike,
    trust: Sequence[PathLike],
    *,
    intermediates: Sequence[PathLike] = (),
    crls: Sequence[PathLike] = (),
    group: str = DEFAULT_GROUP,
    tls13: bool | None = None,
    key_password: bytes | None = None,
) -> ssl.SSLContext:
    """A TR-03116-3 server context (the GWA/EMT endpoint gateways connect to). Clients must
    present a certificate chaining to ``trust``. ``tls13=None`` auto-detects (see module doc)."""
    return _base_context(ssl.PROTOCOL_TLS_SERVER, cert=cert, key=key, trust=trust, intermediates=intermediates,
                         crls=crls, group=group, tls13=tls13, key_password=key_password)


def client_context(
    cert: PathLike,
    key: PathLike,
    trust: Sequence[PathLike],
    *,
    intermediates: Sequence[PathLike] = (),
    crls: Sequence[PathLike] = (),
    group: str = DEFAULT_GROUP,
    tls13: bool | None = None,
    key_password: bytes | None = None,
) -> ssl.SSLContext:
    """A TR-03116-3 client context (an SMGW or the simulator connecting to the GWA)."""
    return _base_context(ssl.PROTOCOL_TLS_CLIENT, cert=cert, key=key, trust=trust, intermediates=intermediates,
                         crls=crls, group=group, tls13=tls13, key_password=key_password)


def peer_certificate(conn: ssl.SSLSocket | ssl.SSLObject) -> x509.Certificate | None:
    """The peer's leaf certificate after the handshake (None if none was presented)."""
    der = conn.getpeercert(binary_form=True)
    return x509.load_der_x509_certificate(der) if der else None


def validate_peer(
    conn: ssl.SSLSocket | ssl.SSLObject,
    validator: Validator,
    *,
    at: dt.datetime | None = None,
    expected_role: Role | None = None,
    expected_cn: str | None = None,
    cert: x509.Certificate | None = None,
    subject: x509.Name | None = None,
) -> Verdict:
    """Run the peer's certificate through ``validator`` for purpose TLS (revocation included),
    and optionally check its SM-PKI role (CN suffix) or exact CN. Close the connection unless
    the verdict is valid. ``cert``/``subject``: the peer certificate and its subject if the
    caller has already loaded them."""
    if cert is None:
        try:
            cert = peer_certificate(conn)
        except PARSE_ERRORS as err:
            return Verdict(False, Reason.MALFORMED, None, f"peer certificate unparseable: {err}")
    if cert is None:
        return Verdict(False, Reason.UNKNOWN_ISSUER, None, "peer presented no certificate")
    verdict = validator.validate(cert, "tls", at)
    if not verdict.valid:
        return verdict
    if subject is None:
        subject = cert.subject
    if expected_role is not None and role_of_cn(common_name_of(subject)) is not expected_role:
        return Verdict(False, Reason.PROFILE_VIOLATION, verdict.subject,
                       f"rule peer.role: peer is not a {expected_role}")
    if expected_cn is not None:
        cns = [a.value for a in subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
        if cns != [expected_cn]:
            return Verdict(False, Reason.PROFILE_VIOLATION, verdict.subject,
                           f"rule peer.cn: peer CN is {cns}, expected {expected_cn}")
    return verdict


def session_expired(started_at: dt.datetime, now: dt.datetime | None = None) -> bool:
    """True when a TLS connection/session opened at ``started_at`` has reached 48 h."""
    now = now or dt.datetime.now(dt.UTC)
    return now - started_at >= MAX_SESSION_LIFETIME


@functools.cache
def brainpool_tls13_available() -> bool:
    """Whether this Python/OpenSSL can complete a TLS 1.3 handshake on brainpoolP256r1.

    Probed with a real in-memory handshake (throw-away self-signed certificate), not inferred
    from the version string."""
    key = ec.generate_private_key(ec.BrainpoolP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "probe")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(1).not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(minutes=5)).sign(key, hashes.SHA256())
    )
    with tempfile.TemporaryDirectory() as tmp:
        cf, kf = Path(tmp) / "c.pem", Path(tmp) / "k.pem"
        cf.write_bytes(cert_to_pem(cert))
        kf.write_bytes(key_to_pem(key))
        try:
            srv = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            cli = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            for c in (srv, cli):
                c.minimum_version = c.maximum_version = ssl.TLSVersion.TLSv1_3
                c.set_ecdh_curve("brainpoolP256r1")
            srv.load_cert_chain(cf, kf)
            cli.check_hostname = False
            cli.verify_mode = ssl.CERT_NONE
        except (ssl.SSLError, ValueError):
            return False
        return _memory_handshake(srv, cli)


def _memory_handshake(srv_ctx: ssl.SSLContext, cli_ctx: ssl.SSLContext) -> bool:
    s_in, s_out, c_in, c_out = ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO()
    srv = srv_ctx.wrap_bio(s_in, s_out, server_side=True)
    cli = cli_ctx.wrap_bio(c_in, c_out, server_side=False)
    done = {"s": False, "c": False}
    for _ in range(10):
        for side, obj in (("c", cli), ("s", srv)):
            if done[side]:
                continue
            try:
                obj.do_handshake()
                done[side] = True
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                pass
            except ssl.SSLError:
                return False
        s_in.write(c_out.read())
        c_in.write(s_out.read())
        if done["s"] and done["c"]:
            return cli.version() == "TLSv1.3"
    return False


# --------------------------------------------------------------------------- server plumbing
# Shared by the TLS servers gateways connect to (the head-end's listeners, the MDM receiver).


def start_server_tls(transport: asyncio.BaseTransport, app_protocol: asyncio.Protocol, ctx: ssl.SSLContext,
                     handshake_timeout: float) -> asyncio.Future[None]:
    """Wire the server side of TLS into a just-accepted TCP ``transport`` synchronously (no byte can
    slip past it), the way ``loop.start_tls`` does internally; ``app_protocol.connection_made`` is
    called with the TLS application transport once the handshake is done. Returns the handshake
    future (its exception: why the handshake failed, see :func:`handshake_failure_reason`).

    ``loop.start_tls`` itself is racy under uvloop: uvloop starts reading after connection_made
    even if the protocol paused, so a ClientHello could reach the application raw. uvloop's own
    SSLProtocol keeps an idle session at ~25 KB; asyncio's preallocates 256 KB."""
    loop = asyncio.get_running_loop()
    waiter: asyncio.Future[None] = loop.create_future()
    proto = _ssl_protocol_class(loop)(loop, app_protocol, ctx, waiter, server_side=True,
                                       ssl_handshake_timeout=handshake_timeout)
    transport.set_protocol(proto)
    proto.connection_made(transport)
    return waiter


def _ssl_protocol_class(loop: asyncio.AbstractEventLoop) -> type[Any]:
    try:
        import uvloop
        import uvloop.loop
    except ImportError:  # pragma: no cover
        pass
    else:
        if isinstance(loop, uvloop.Loop):
            # uvloop's own SSLProtocol is missing from its type stubs (loop.pyi): looked up untyped.
            ssl_protocol: type[Any] = vars(uvloop.loop)["SSLProtocol"]
            return ssl_protocol
    from asyncio import sslproto

    return sslproto.SSLProtocol


def handshake_failure_reason(err: BaseException) -> str:
    """A short label of why a server-side handshake failed (metrics, logs)."""
    if isinstance(err, asyncio.TimeoutError | TimeoutError):
        return "timeout"
    reason = getattr(err, "reason", None)
    if reason:
        return str(reason).lower()[:60]
    return type(err).__name__.lower()


def disable_session_cache(ctx: ssl.SSLContext) -> bool:
    """Turn off OpenSSL's server session cache on ``ctx``: gateways reconnect rarely, so resumption
    buys nothing, while every cached session (with the peer's certificate) costs memory per
    connection. Python offers no setter, so this calls ``SSL_CTX_ctrl`` on the context's
    ``SSL_CTX*`` (the first field after the object header). Guarded: it only writes after reading
    back the default mode (server caching) through the same pointer; otherwise it does nothing."""
    ctrl = ssl_ctx_ctrl(ctx)
    if ctrl is None or ctrl(_SSL_CTRL_GET_SESS_CACHE_MODE, 0, None) != _SSL_SESS_CACHE_SERVER:
        return False
    ctrl(_SSL_CTRL_SET_SESS_CACHE_MODE, _SSL_SESS_CACHE_OFF, None)
    return ctrl(_SSL_CTRL_GET_SESS_CACHE_MODE, 0, None) == _SSL_SESS_CACHE_OFF


_SSL_CTRL_SET_SESS_CACHE_MODE = 44
_SSL_CTRL_GET_SESS_CACHE_MODE = 45
_SSL_SESS_CACHE_OFF = 0
_SSL_SESS_CACHE_SERVER = 2
