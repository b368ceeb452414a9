"""What ``openssl speed`` says brainpoolP256r1 costs on this machine (the floor the benches compare with)."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass

# OpenSSL 3.0 names them ecdsabrp256r1/ecdhbrp256r1; newer builds also accept the long names.
NAMES = (("ecdsabrainpoolP256r1", "ecdhbrainpoolP256r1"), ("ecdsabrp256r1", "ecdhbrp256r1"))


@dataclass(frozen=True)
class BrainpoolSpeed:
    """Operations per CPU-second of one ``openssl speed`` process."""

    sign: float
    verify: float
    ecdh: float
    names: str  # the algorithm names this ``openssl`` accepted


def brainpool_speed(seconds: int) -> BrainpoolSpeed | None:
    """brainpoolP256r1 sign/verify/ECDH rates from ``openssl speed`` (None if it reports none)."""
    for names in NAMES:
        res = subprocess.run(["openssl", "speed", "-seconds", str(seconds), *names],
                             capture_output=True, text=True, timeout=120, check=False)
        out = res.stdout
        sig = re.search(r"256 bits ecdsa \(brainpoolP256r1\)\s+\S+s\s+\S+s\s+([\d.]+)\s+([\d.]+)", out)
        dh = re.search(r"256 bits ecdh \(brainpoolP256r1\)\s+\S+s\s+([\d.]+)", out)
        if res.returncode == 0 and sig and dh:
            return BrainpoolSpeed(sign=float(sig.group(1)), verify=float(sig.group(2)), ecdh=float(dh.group(1)),
                                  names=" ".join(names))
    return None
