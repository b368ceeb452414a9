"""PKI speed next to the brainpool floor: CMS open (verify + decrypt + decompress, 10 KB payload)
and wake-up build per second on one core, beside ``openssl speed`` brainpoolP256r1 sign/verify/ECDH
on the same machine. Target: CMS open >= half the rate the pure brainpool operations allow
(1 ECDSA verify + 1 ECDH per open).

    .venv/bin/python bench/pki_bench.py [--seconds 2] [--gateways 1000]

Prints a Markdown table (paste into docs/benchmarks.md with date and machine).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import ssl
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from bench.common.host import cpu_model
from bench.common.openssl import BrainpoolSpeed, brainpool_speed
from pki import cms, wakeup
from pki.testpki import init_test_pki


def rate(fn: Callable[[], object], seconds: float) -> float:
    """Calls per CPU-second of ``fn`` on this thread (warm-up call not counted).

    CPU time, not wall time, because ``openssl speed`` divides by CPU user time too (unless
    ``-elapsed``), and because a shared machine's other load must not count against us."""
    fn()
    n, start = 0, time.thread_time()
    while (elapsed := time.thread_time() - start) < seconds:
        fn()
        n += 1
    return n / elapsed


def openssl_speed(seconds: int) -> BrainpoolSpeed:
    """brainpoolP256r1 sign/verify/ECDH rates from ``openssl speed`` (single process)."""
    speed = brainpool_speed(seconds)
    if speed is None:
        raise SystemExit("openssl speed did not report brainpoolP256r1 rates")
    return speed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--gateways", type=int, default=1000, help="gateways for the bulk issuance line")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        pki = init_test_pki(Path(tmp) / "pki", gateways=1)
        gw = pki.gateway(pki.gateway_id(0))
        emt = pki.emts["emt1"]
        validator = pki.validator()
        payload = (b"<r obis='1-0:1.8.0' t='2026-01-01T00:15:00Z' v='%08d'/>" * 200)[:10_240]
        payload = bytes(payload)
        sealed = {c: cms.seal(payload, sign_key=gw.sig.key, sign_cert=gw.sig.cert, recipient_cert=emt.enc.cert,
                              cipher=c) for c in ("gcm", "cbc-cmac")}
        ekey, ecert = emt.enc.key, emt.enc.cert
        gwa_key = pki.gwa.sig.key
        gwa_pub = pki.gwa.sig.cert.public_key()
        assert isinstance(gwa_pub, ec.EllipticCurvePublicKey)
        pkt = wakeup.build("EDNT0116909060", gwa_key)
        raw_sig = gwa_key.sign(b"x" * 32, ec.ECDSA(hashes.SHA256()))
        peer = ec.generate_private_key(ec.BrainpoolP256R1()).public_key()

        before = openssl_speed(int(max(1, args.seconds)))
        s = args.seconds
        ours = {
            "cms open gcm": rate(lambda: cms.open(sealed["gcm"], key=ekey, cert=ecert, validator=validator), s),
            "cms open cbc-cmac": rate(
                lambda: cms.open(sealed["cbc-cmac"], key=ekey, cert=ecert, validator=validator), s),
            "cms seal gcm": rate(lambda: cms.seal(payload, sign_key=gw.sig.key, sign_cert=gw.sig.cert,
                                                  recipient_cert=ecert), s),
            "wake-up build": rate(lambda: wakeup.build("EDNT0116909060", gwa_key), s),
            "wake-up verify": rate(lambda: wakeup.verify(pkt, "EDNT0116909060", gwa_pub), s),
            "validate (warm)": rate(lambda: validator.validate(gw.tls.cert, "tls"), s),
            "py verify": rate(lambda: gwa_pub.verify(raw_sig, b"x" * 32, ec.ECDSA(hashes.SHA256())), s),
            "py ecdh": rate(lambda: ekey.exchange(ec.ECDH(), peer), s),
        }
        after = openssl_speed(int(max(1, args.seconds)))
        bulk_dir = Path(tmp) / "bulk"
        bulk = init_test_pki(bulk_dir)
        t = time.perf_counter()
        bulk.issue_gateways(range(200), workers=1)
        serial_rate = 200 / (time.perf_counter() - t)
        t = time.perf_counter()
        bulk.issue_gateways(range(200, 200 + args.gateways))
        parallel_rate = args.gateways / (time.perf_counter() - t)

    ossl = {"sign": (before.sign + after.sign) / 2, "verify": (before.verify + after.verify) / 2,
            "ecdh": (before.ecdh + after.ecdh) / 2}
    floor = 1 / (1 / ossl["verify"] + 1 / ossl["ecdh"])
    wake_floor = ossl["sign"]
    cpu = cpu_model() or platform.processor() or platform.machine()
    print(f"PKI benchmark {dt.date.today().isoformat()} on {platform.node()} / {cpu} ({os.cpu_count()} CPUs), "
          f"Python {platform.python_version()}, {ssl.OPENSSL_VERSION}")
    print(f"openssl speed names: {before.names}; its rates are the mean of a run before and after ours. "
          "All single-core rates are per CPU-second (openssl speed's default divisor); the bulk "
          "issuance lines are wall-clock.\n")
    print("| operation | per second (1 core) | reference | ratio |")
    print("|---|---:|---|---:|")
    print(f"| openssl speed brainpoolP256r1 sign | {ossl['sign']:.0f} | | |")
    print(f"| openssl speed brainpoolP256r1 verify | {ossl['verify']:.0f} | | |")
    print(f"| openssl speed brainpoolP256r1 ECDH | {ossl['ecdh']:.0f} | | |")
    print(f"| floor: 1 verify + 1 ECDH | {floor:.0f} | | |")
    for name in ("cms open gcm", "cms open cbc-cmac"):
        r = ours[name]
        print(f"| {name} (10 KB, incl. signer validation) | {r:.0f} | floor {floor:.0f} | {r / floor:.2f} |")
    print(f"| cms seal gcm (10 KB) | {ours['cms seal gcm']:.0f} | 1 sign + 1 keygen + 1 ECDH | |")
    print(f"| wake-up build | {ours['wake-up build']:.0f} | sign {wake_floor:.0f} | "
          f"{ours['wake-up build'] / wake_floor:.2f} |")
    print(f"| wake-up verify | {ours['wake-up verify']:.0f} | verify {ossl['verify']:.0f} | "
          f"{ours['wake-up verify'] / ossl['verify']:.2f} |")
    print(f"| certificate validation (memoised path, CRL lookup) | {ours['validate (warm)']:.0f} | | |")
    print(f"| cryptography verify (library floor) | {ours['py verify']:.0f} | | |")
    print(f"| cryptography ECDH (library floor) | {ours['py ecdh']:.0f} | | |")
    print(f"| test PKI: gateway triples, 1 process | {serial_rate:.0f} | 3 keygen + 3 sign each | |")
    print(f"| test PKI: gateway triples, {os.cpu_count()} processes ({args.gateways}) | {parallel_rate:.0f} | | |")
    target = ours["cms open gcm"] >= floor / 2
    print(f"\nTarget CMS open >= floor/2 ({floor / 2:.0f}/s): {'met' if target else 'NOT met'}")
    print(f"10,000 gateways at the parallel rate: ~{10_000 / parallel_rate:.0f} s")


if __name__ == "__main__":
    main()
