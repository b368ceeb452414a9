"""A complete test SM-PKI on disk for development, tests, the demo and the fleet simulator.

Root CA (brainpoolP384r1, ecdsa-with-SHA384) -> Sub-CA (brainpoolP256r1, ecdsa-with-SHA256) ->
TLS/SIG/ENC certificates for one GWA, EMTs and N SMGWs, one CRL per CA. Layout (docs/pki.md)::

    DIR/pki.json                       manifest (base URL, names, gateway ID sequence)
    DIR/ca/root.crt  ca/root.key       root CA (key 0600)
    DIR/ca/subca.crt ca/subca.key      Sub-CA (key 0600)
    DIR/ca/chain.pem                   Sub-CA + root (what a TLS peer needs besides its leaf)
    DIR/ca/{root,subca}.state.json     CRL number and revoked serials per CA
    DIR/crl/{root,subca}.crl           DER CRLs, served by the test CA at <base>/crl/<name>.crl
    DIR/gwa/{tls,sig,enc}.{crt,key}    the GWA (gridgate itself)
    DIR/emt/<name>/{tls,sig,enc}.{crt,key}
    DIR/smgw/<GATEWAY-ID>/{tls,sig,enc}.{crt,key}

Gateway IDs follow :func:`pki.ids.gateway_id`, i.e. the demo fleet sequence of
:func:`core.ids.demo_gateway_id` (``ETHE0116900000``, ``EEMH0116900001``, ...), so the simulator
and master data find the certificates of "gateway i"; any other valid ID can be issued too.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import multiprocessing
import os
import shutil
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from ipaddress import IPv4Address
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from pki import ids
from pki.crl import RevokedEntry, build_crl
from pki.loader import cert_file, cert_to_pem, certs_to_pem, key_file, write_atomic, write_private_key
from pki.profile import (
    ORG_TEST,
    Role,
    Usage,
    build_ca_certificate,
    build_end_entity_certificate,
    subject_name,
)

if TYPE_CHECKING:
    from pki.validation import Validator

DEFAULT_BASE_URL = "http://127.0.0.1:8480"
USAGES = (Usage.TLS, Usage.SIG, Usage.ENC)
# Below this many gateways a process pool costs more than it saves.
_PARALLEL_THRESHOLD = 400


@dataclass(frozen=True)
class TestPkiConfig:
    """Lifetimes and names. Real SM-PKI lifetimes and CRL intervals are not public: configuration."""

    __test__ = False  # not a pytest class

    base_url: str = DEFAULT_BASE_URL
    organisation: str = ORG_TEST
    root_days: int = 3650
    subca_days: int = 1825
    end_entity_days: int = 730  # EMT certificates are renewed every 2 years
    crl_days: int = 7
    backdate: dt.timedelta = dt.timedelta(hours=1)  # tolerate peers whose clocks run behind
    gwa_name: str = "GRIDGATE-TEST"
    gwa_dns: tuple[str, ...] = ("gwa.gridgate.test", "localhost")
    emts: tuple[str, ...] = ("emt1", "emt2")

    def to_json(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        d["backdate"] = self.backdate.total_seconds()
        d["gwa_dns"] = list(self.gwa_dns)
        d["emts"] = list(self.emts)
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> TestPkiConfig:
        d = dict(d)
        d["backdate"] = dt.timedelta(seconds=d.get("backdate", 3600))
        d["gwa_dns"] = tuple(d.get("gwa_dns", ()))
        d["emts"] = tuple(d.get("emts", ()))
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})

    def crl_url(self, ca: str) -> str:
        return f"{self.base_url.rstrip('/')}/crl/{ca}.crl"


@dataclass
class Credential:
    """One certificate and its private key on disk (loaded lazily)."""

    cert_path: Path
    key_path: Path

    @cached_property
    def cert(self) -> x509.Certificate:
        return cert_file(self.cert_path)

    @cached_property
    def key(self) -> ec.EllipticCurvePrivateKey:
        return key_file(self.key_path)


@dataclass
class Entity:
    """An end entity (GWA, EMT, SMGW) with its three credentials."""

    name: str
    role: Role
    directory: Path
    tls: Credential = field(init=False)
    sig: Credential = field(init=False)
    enc: Credential = field(init=False)

    def __post_init__(self) -> None:
        for u in USAGES:
            setattr(self, u.value, Credential(self.directory / f"{u}.crt", self.directory / f"{u}.key"))

    def credential(self, usage: Usage | str) -> Credential:
        return {Usage.TLS: self.tls, Usage.SIG: self.sig, Usage.ENC: self.enc}[Usage(usage)]

    @property
    def exists(self) -> bool:
        return all((self.directory / f"{u}.crt").exists() for u in USAGES)


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


class _IssuingArgs(TypedDict):
    """The keyword arguments of :func:`_write_entity` every end entity of one Sub-CA shares."""

    issuer_cert: x509.Certificate
    issuer_key: ec.EllipticCurvePrivateKey
    not_before: dt.datetime
    not_after: dt.datetime
    crl_url: str
    organisation: str


def _write_entity(
    directory: Path,
    role: Role,
    common_name: str,
    *,
    issuer_cert: x509.Certificate,
    issuer_key: ec.EllipticCurvePrivateKey,
    not_before: dt.datetime,
    not_after: dt.datetime,
    crl_url: str,
    organisation: str,
    san: list[x509.GeneralName] | None,
    sequence: int = 1,
) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    subject = subject_name(common_name, sequence, organisation)
    for usage in USAGES:
        key = ec.generate_private_key(ec.BrainpoolP256R1())
        cert = build_end_entity_certificate(
            subject=subject,
            public_key=key.public_key(),
            usage=usage,
            role=role,
            issuer_cert=issuer_cert,
            issuer_key=issuer_key,
            not_before=not_before,
            not_after=not_after,
            crl_url=crl_url,
            san=san,
        )
        write_private_key(directory / f"{usage}.key", key)
        write_atomic(directory / f"{usage}.crt", cert_to_pem(cert))


def init_test_pki(
    directory: str | os.PathLike[str],
    *,
    gateways: int = 0,
    config: TestPkiConfig | None = None,
    base_url: str | None = None,
    now: dt.datetime | None = None,
    workers: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> TestPki:
    """Create a fresh test PKI in ``directory`` (must be empty or absent) and return it.

    ``gateways`` SMGW triples are issued (in parallel processes for large counts; ``workers``
    defaults to the CPU count). ``progress`` is called with the number of gateways finished.
    """
    cfg = config or TestPkiConfig()
    if base_url is not None:
        cfg = TestPkiConfig.from_json({**cfg.to_json(), "base_url": base_url})
    root_dir = Path(directory)
    if root_dir.exists() and any(root_dir.iterdir()):
        raise FileExistsError(f"{root_dir} is not empty")
    now = (now or _utcnow()).astimezone(dt.UTC)
    nb = now - cfg.backdate
    for sub in ("ca", "crl", "gwa", "emt", "smgw"):
        (root_dir / sub).mkdir(parents=True, exist_ok=True)

    root_key = ec.generate_private_key(ec.BrainpoolP384R1())
    root = build_ca_certificate(
        subject=subject_name("SM-Test-Root.CA", 1, cfg.organisation),
        public_key=root_key.public_key(),
        issuer_cert=None,
        issuer_key=root_key,
        not_before=nb,
        not_after=now + dt.timedelta(days=cfg.root_days),
        crl_url=None,
        path_length=1,
    )
    sub_key = ec.generate_private_key(ec.BrainpoolP256R1())
    subca = build_ca_certificate(
        subject=subject_name("SM-Test-SubCA.CA", 1, cfg.organisation),
        public_key=sub_key.public_key(),
        issuer_cert=root,
        issuer_key=root_key,
        not_before=nb,
        not_after=now + dt.timedelta(days=cfg.subca_days),
        crl_url=cfg.crl_url("root"),
        path_length=0,
    )
    ca = root_dir / "ca"
    write_private_key(ca / "root.key", root_key)
    write_private_key(ca / "subca.key", sub_key)
    write_atomic(ca / "root.crt", cert_to_pem(root))
    write_atomic(ca / "subca.crt", cert_to_pem(subca))
    write_atomic(ca / "chain.pem", certs_to_pem([subca, root]))
    manifest = {"version": 1, "created": now.isoformat(), "config": cfg.to_json()}
    write_atomic(root_dir / "pki.json", json.dumps(manifest, indent=2).encode())

    pki = TestPki(root_dir)
    ee_end = now + dt.timedelta(days=cfg.end_entity_days)
    common: _IssuingArgs = {
        "issuer_cert": subca,
        "issuer_key": sub_key,
        "not_before": nb,
        "not_after": ee_end,
        "crl_url": cfg.crl_url("subca"),
        "organisation": cfg.organisation,
    }
    gwa_san: list[x509.GeneralName] = [x509.DNSName(d) for d in cfg.gwa_dns]
    gwa_san.append(x509.IPAddress(IPv4Address("127.0.0.1")))
    _write_entity(root_dir / "gwa", Role.GWA, f"{cfg.gwa_name}.GWA", san=gwa_san, **common)
    for name in cfg.emts:
        _write_entity(
            root_dir / "emt" / name,
            Role.EMT,
            f"{name.upper()}-TEST.EMT",
            san=[x509.DNSName(f"{name}.gridgate.test")],
            **common,
        )
    for ca_name in ("root", "subca"):
        _save_state(pki, ca_name, {"crl_number": 0, "revoked": []})
    pki.publish_crls(now=now)
    if gateways:
        pki.issue_gateways(range(gateways), now=now, workers=workers, progress=progress)
    return pki


def issue_gateway(directory: str | os.PathLike[str], gateway_id: str, **kwargs: Any) -> Entity:
    """Issue (or return the existing) TLS/SIG/ENC triple of ``gateway_id`` in the test PKI at
    ``directory``; see :meth:`TestPki.issue_gateway` for the keyword arguments."""
    return TestPki(directory).issue_gateway(gateway_id, **kwargs)


def _save_state(pki: TestPki, ca_name: str, state: dict[str, Any]) -> None:
    write_atomic(pki.directory / "ca" / f"{ca_name}.state.json", json.dumps(state, indent=1).encode())


def _issue_chunk(directory: str, gateway_ids: Sequence[str], now_iso: str, force: bool) -> int:
    """Worker body: issue triples for ``gateway_ids`` (runs in a pool process)."""
    pki = TestPki(Path(directory))
    now = dt.datetime.fromisoformat(now_iso)
    for gid in gateway_ids:
        pki.issue_gateway(gid, now=now, force=force)
    return len(gateway_ids)


class TestPki:
    """Handle on a test PKI directory created by :func:`init_test_pki`."""

    __test__ = False

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        manifest_path = self.directory / "pki.json"
        if not manifest_path.exists():
            raise FileNotFoundError(f"{self.directory} is not a test PKI (no pki.json)")
        self.manifest: dict[str, Any] = json.loads(manifest_path.read_text())
        self.config = TestPkiConfig.from_json(self.manifest["config"])

    # -- CA material
    @cached_property
    def root(self) -> x509.Certificate:
        return cert_file(self.directory / "ca" / "root.crt")

    @cached_property
    def subca(self) -> x509.Certificate:
        return cert_file(self.directory / "ca" / "subca.crt")

    @property
    def root_path(self) -> Path:
        return self.directory / "ca" / "root.crt"

    @property
    def subca_path(self) -> Path:
        return self.directory / "ca" / "subca.crt"

    @property
    def chain_path(self) -> Path:
        return self.directory / "ca" / "chain.pem"

    def crl_path(self, ca_name: str) -> Path:
        return self.directory / "crl" / f"{ca_name}.crl"

    def ca_cert(self, ca_name: str) -> x509.Certificate:
        return self.root if ca_name == "root" else self.subca

    def ca_key(self, ca_name: str) -> ec.EllipticCurvePrivateKey:
        return key_file(self.directory / "ca" / f"{ca_name}.key")

    # -- end entities
    @property
    def gwa(self) -> Entity:
        return Entity(self.config.gwa_name, Role.GWA, self.directory / "gwa")

    @property
    def emts(self) -> dict[str, Entity]:
        return {n: Entity(n, Role.EMT, self.directory / "emt" / n) for n in self.config.emts}

    def gateway(self, gateway_id: str) -> Entity:
        gid = str(ids.parse_gateway_id(gateway_id))
        return Entity(gid, Role.SMGW, self.directory / "smgw" / gid)

    def gateway_id(self, index: int) -> str:
        return ids.gateway_id(index)

    def gateway_ids(self) -> list[str]:
        """IDs of all gateways issued so far, sorted."""
        d = self.directory / "smgw"
        return sorted(p.name for p in d.iterdir() if p.is_dir() and not p.name.startswith(".")) if d.exists() else []

    def issue_gateway(
        self,
        gateway_id: str,
        *,
        now: dt.datetime | None = None,
        force: bool = False,
        sequence: int = 1,
    ) -> Entity:
        """Issue the TLS/SIG/ENC triple of one SMGW (CN ``<ID>.SMGW``, no SAN). Idempotent: an
        existing triple is returned unchanged unless ``force``. Safe to call concurrently from
        several processes, also for the same gateway: the triple is written to a private temp
        directory and renamed into place, so a reader never sees keys and certificates of two
        different issuances mixed."""
        ent = self.gateway(gateway_id)
        if ent.exists and not force:
            return ent
        now = (now or _utcnow()).astimezone(dt.UTC)
        tmp = ent.directory.with_name(f".{ent.name}.{os.getpid()}.{id(self)}.tmp")
        _write_entity(
            tmp,
            Role.SMGW,
            f"{ent.name}.SMGW",
            issuer_cert=self.subca,
            issuer_key=self._subca_key,
            not_before=now - self.config.backdate,
            not_after=now + dt.timedelta(days=self.config.end_entity_days),
            crl_url=self.config.crl_url("subca"),
            organisation=self.config.organisation,
            san=None,
            sequence=sequence,
        )
        if force and ent.directory.exists():
            old = ent.directory.with_name(f".{ent.name}.{os.getpid()}.{id(self)}.old")
            os.replace(ent.directory, old)
            shutil.rmtree(old, ignore_errors=True)
        try:
            os.rename(tmp, ent.directory)
        except OSError:
            # Another process won the race with a complete triple of its own: keep that one.
            shutil.rmtree(tmp, ignore_errors=True)
        return ent

    @cached_property
    def _subca_key(self) -> ec.EllipticCurvePrivateKey:
        return self.ca_key("subca")

    def issue_gateways(
        self,
        indices: range | Sequence[int] | None = None,
        *,
        gateway_ids: Sequence[str] | None = None,
        now: dt.datetime | None = None,
        workers: int | None = None,
        force: bool = False,
        progress: Callable[[int], None] | None = None,
    ) -> list[str]:
        """Bulk issue: gateways by sequence index or explicit IDs; returns their IDs."""
        gids = list(gateway_ids or [self.gateway_id(i) for i in (indices or ())])
        now = (now or _utcnow()).astimezone(dt.UTC)
        workers = workers or os.cpu_count() or 1
        if len(gids) < _PARALLEL_THRESHOLD or workers <= 1:
            for n, gid in enumerate(gids, 1):
                self.issue_gateway(gid, now=now, force=force)
                if progress and n % 100 == 0:
                    progress(n)
        else:
            chunk = max(50, len(gids) // (workers * 8))
            chunks = [gids[i : i + chunk] for i in range(0, len(gids), chunk)]
            # spawn, not fork: callers (pytest, workers) may have threads running.
            ctx = multiprocessing.get_context("spawn")
            done = 0
            with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
                for n in pool.map(_issue_chunk, [str(self.directory)] * len(chunks), chunks,
                                  [now.isoformat()] * len(chunks), [force] * len(chunks)):
                    done += n
                    if progress:
                        progress(done)
        if progress:
            progress(len(gids))
        return gids

    def issue_certificate(
        self,
        *,
        subject: x509.Name,
        public_key: ec.EllipticCurvePublicKey,
        usage: Usage,
        role: Role,
        san: list[x509.GeneralName] | None = None,
        now: dt.datetime | None = None,
        days: int | None = None,
    ) -> x509.Certificate:
        """Sign one end-entity certificate with the Sub-CA (used by the test CA for PKCS#10)."""
        now = (now or _utcnow()).astimezone(dt.UTC)
        return build_end_entity_certificate(
            subject=subject,
            public_key=public_key,
            usage=usage,
            role=role,
            issuer_cert=self.subca,
            issuer_key=self._subca_key,
            not_before=now - self.config.backdate,
            not_after=now + dt.timedelta(days=days or self.config.end_entity_days),
            crl_url=self.config.crl_url("subca"),
            san=san,
        )

    # -- revocation
    @contextmanager
    def _locked(self) -> Iterator[None]:
        with open(self.directory / "ca" / ".lock", "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _state(self, ca_name: str) -> dict[str, Any]:
        return json.loads((self.directory / "ca" / f"{ca_name}.state.json").read_text())

    def revoked(self, ca_name: str = "subca") -> list[RevokedEntry]:
        return [
            RevokedEntry(int(r["serial"], 16), dt.datetime.fromisoformat(r["date"]),
                         x509.ReasonFlags(r["reason"]) if r.get("reason") else None)
            for r in self._state(ca_name)["revoked"]
        ]

    def revoke(
        self,
        cert_or_serial: x509.Certificate | int,
        *,
        reason: x509.ReasonFlags = x509.ReasonFlags.key_compromise,
        at: dt.datetime | None = None,
    ) -> None:
        """Revoke a certificate (by default at its Sub-CA; a Sub-CA certificate at the root) and
        republish that CA's CRL."""
        at = (at or _utcnow()).astimezone(dt.UTC)
        if isinstance(cert_or_serial, x509.Certificate):
            serial = cert_or_serial.serial_number
            ca_name = "root" if cert_or_serial.issuer == self.root.subject and \
                cert_or_serial.subject != self.root.subject else "subca"
        else:
            serial, ca_name = cert_or_serial, "subca"
        with self._locked():
            state = self._state(ca_name)
            if not any(int(r["serial"], 16) == serial for r in state["revoked"]):
                state["revoked"].append({"serial": f"{serial:x}", "date": at.isoformat(), "reason": reason.value})
                _save_state(self, ca_name, state)
        self.publish_crls(only=ca_name)

    def publish_crls(
        self,
        *,
        now: dt.datetime | None = None,
        next_update: dt.datetime | None = None,
        only: str | None = None,
    ) -> None:
        """Re-sign and write the CRL of each CA (``only`` one of ``root``/``subca``)."""
        now = (now or _utcnow()).astimezone(dt.UTC)
        nu = next_update or now + dt.timedelta(days=self.config.crl_days)
        with self._locked():
            for ca_name in ("root", "subca"):
                if only and ca_name != only:
                    continue
                state = self._state(ca_name)
                state["crl_number"] += 1
                crl = build_crl(
                    issuer_cert=self.ca_cert(ca_name),
                    issuer_key=self.ca_key(ca_name),
                    revoked=self.revoked(ca_name),
                    number=state["crl_number"],
                    this_update=now,
                    next_update=nu,
                )
                _save_state(self, ca_name, state)
                write_atomic(self.crl_path(ca_name), crl.public_bytes(serialization.Encoding.DER))

    def crls(self) -> list[x509.CertificateRevocationList]:
        return [x509.load_der_x509_crl(self.crl_path(n).read_bytes()) for n in ("root", "subca")]

    def validator(self, **kwargs: Any) -> Validator:
        """A :class:`pki.validation.Validator` anchored at this root with the Sub-CA known.
        Without ``crls``/``crl_cache`` kwargs it uses the CRL files on disk (no HTTP)."""
        from pki.validation import Validator

        if "crls" not in kwargs and "crl_cache" not in kwargs:
            kwargs["crls"] = self.crls()
        return Validator([self.root], [self.subca], **kwargs)

    def remove(self) -> None:
        shutil.rmtree(self.directory)
