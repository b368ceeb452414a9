"""The certificates installed on the gateways, kept once per SHA-256 in the fleet's store (a gateway
document names only the hash), and the gateway keys that go with them: decrypting, sealing, renewal."""

from __future__ import annotations

import hashlib
import time

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from pki import cms
from simulator.credentials import FleetCredentials, with_key_identifier
from simulator.credentials import load_private_key_pem as load_key
from simulator.errors import CommandError
from simulator.state import GatewayState
from simulator.store import Store


class Certificates:
    def __init__(self, store: Store, creds: FleetCredentials) -> None:
        self.store = store
        self.creds = creds
        self._by_sha: dict[str, x509.Certificate] = {}
        self._factory_gwa: tuple[str, dict[str, str]] | None = None

    def remember_der(self, sha: str, der: bytes) -> None:
        self.store.put_certificate(sha, der)
        self._by_sha.setdefault(sha, x509.load_der_x509_certificate(der))

    def remember(self, cert: x509.Certificate) -> str:
        """Store ``cert``; returns its SHA-256, the name gateway documents use for it."""
        der = cert.public_bytes(serialization.Encoding.DER)
        sha = hashlib.sha256(der).hexdigest()
        if sha not in self._by_sha:
            self.remember_der(sha, der)
        return sha

    def get(self, sha: str) -> x509.Certificate:
        cert = self._by_sha.get(sha)
        if cert is None:
            der = self.store.get_certificate(sha)
            if der is None:
                raise CommandError("internal", f"certificate {sha[:12]} missing from the store")
            cert = self._by_sha[sha] = x509.load_der_x509_certificate(der)
        return cert

    def gwa(self, gw: GatewayState, usage: str) -> x509.Certificate | None:
        """The GWA certificate of ``usage`` installed on the gateway, if any."""
        entry = gw.certificates.get(f"gwa:{usage}")
        return self.get(entry["sha256"]) if entry else None

    def personalise(self, gw: GatewayState, now: float) -> None:
        """A new gateway trusts the test PKI's GWA (its certificates installed at the factory)."""
        if self._factory_gwa is None:
            gwa = self.creds.pki.gwa
            self._factory_gwa = (gwa.name, {u: self.remember(gwa.credential(u).cert) for u in ("tls", "sig", "enc")})
        name, shas = self._factory_gwa
        for usage, sha in shas.items():
            gw.certificates[f"gwa:{usage}"] = {"owner": name, "role": "gwa", "usage": usage, "sha256": sha,
                                               "installed_at": now}
        gw.device_state = "personalized"

    def use_own_keys(self, gw: GatewayState) -> None:
        """Renewed own keys of a loaded gateway become its active credentials again."""
        for usage, own in gw.own_keys.items():
            self.creds.use_own(gw.gateway_id, usage, self.get(own["sha256"]), load_key(own["key"]))

    def decryption_keys(self, gw: GatewayState) -> list[tuple[x509.Certificate, ec.EllipticCurvePrivateKey]]:
        """ENC keys the gateway decrypts with, the active one first: then a pending ENC key and the
        ENC keys a renewal replaced, until their certificates expire (docs/protocol.md 10.4)."""
        active = self.creds.keys(gw.gateway_id, "enc")
        out = [(active.cert, active.key)]
        pending = gw.pending_keys.get("enc")
        if pending is not None:
            key = load_key(pending["key"])
            # cms.open matches the recipient by the SKI of ``cert``: a stand-in with the pending key's SKI
            out.append((with_key_identifier(active.cert, key), key))
        now = time.time()
        for old in reversed(gw.previous_enc):
            if old["not_after"] > now:
                out.append((self.get(old["sha256"]), load_key(old["key"])))
        return out

    def seal(self, gw: GatewayState, xml: bytes) -> bytes:
        """What the gateway sends its GWA: signed with its SIG key, encrypted for the GWA's ENC certificate."""
        sig = self.creds.keys(gw.gateway_id, "sig")
        enc = self.gwa(gw, "enc")
        if enc is None:
            raise CommandError("internal", "no GWA ENC certificate installed")
        return cms.seal(xml, sign_key=sig.key, sign_cert=sig.cert, recipient_cert=enc)
