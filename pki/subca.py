"""The tenant's SM-PKI Sub-CA as seen by certificate renewal: the :class:`SubCa` interface and its
adapters. What is here is :class:`HttpTestSubCa`, the development stand-in ``pki/testca.py``
(``POST /certify?usage=`` with the PKCS#10, PEM answer); the SM-PKI Sub-CA's certificate request web
service (TR-03109-4: mutually authenticated with the GWA's TLS identity; not public) is a new
implementation of the same interface.

Which URL: ``GRIDGATE_SUBCA_URL`` when set, otherwise derived from the certificate being renewed:
its CRL distribution point ``<base>/crl/<name>.crl`` is published by the CA at ``<base>`` (true for
the test CA). ``GRIDGATE_SUBCA_TOKEN`` is sent as bearer token, ``GRIDGATE_SUBCA_TIMEOUT_S`` bounds
one request (default 30 s).
"""

from __future__ import annotations

import os
from typing import Protocol
from urllib.parse import urlsplit

import httpx

from core.errors import InvalidInput

SUBCA_URL_ENV = "GRIDGATE_SUBCA_URL"
SUBCA_TOKEN_ENV = "GRIDGATE_SUBCA_TOKEN"
SUBCA_TIMEOUT_ENV = "GRIDGATE_SUBCA_TIMEOUT_S"


class SubCaUnknown(InvalidInput):
    """Nothing says which Sub-CA certifies this renewal."""

    code = "subca_unknown"


class SubCaError(Exception):
    """The Sub-CA did not certify. ``issued`` False: certainly nothing was issued; None: unknown."""

    def __init__(self, reason: str, detail: str, *, retryable: bool, issued: bool | None = False) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail, self.retryable, self.issued = reason, detail, retryable, issued


class SubCa(Protocol):
    url: str

    async def certify(self, csr_der: bytes, usage: str) -> bytes:
        """The PEM certificate for ``csr_der``, or :class:`SubCaError`."""
        ...


class HttpTestSubCa:
    """The test CA's ``POST /certify?usage=`` (pki/testca.py): the development Sub-CA."""

    def __init__(self, url: str, *, token: str | None = None, timeout_s: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.timeout_s = timeout_s

    async def certify(self, csr_der: bytes, usage: str) -> bytes:
        headers = {"Content-Type": "application/pkcs10"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        try:
            async with httpx.AsyncClient(timeout=self.timeout_s) as client:
                resp = await client.post(f"{self.url}/certify", params={"usage": usage}, content=csr_der,
                                         headers=headers)
        except (httpx.ConnectError, httpx.ConnectTimeout) as err:  # nothing reached the CA
            raise SubCaError("subca_unreachable", f"{self.url}: {type(err).__name__}: {err}", retryable=True) from None
        except httpx.HTTPError as err:  # sent, answer lost: the CA may have issued
            raise SubCaError("subca_no_answer", f"{self.url}: {type(err).__name__}: {err}", retryable=True,
                             issued=None) from None
        if resp.status_code == 200:
            return resp.content
        try:
            body = resp.json()
            why = f"{body.get('error', 'error')}: {body.get('detail', '')}".rstrip(": ")
        except ValueError:
            why = resp.text[:200]
        if 400 <= resp.status_code < 500:
            raise SubCaError("subca_refused", f"HTTP {resp.status_code} {why}", retryable=False)
        raise SubCaError("subca_error", f"HTTP {resp.status_code} {why}", retryable=True)


def subca_base_from_crl(crl_urls: list[str]) -> str | None:
    """``http://host:port`` from a CRL distribution point ``http://host:port/.../crl/<name>.crl``."""
    for url in crl_urls:
        parts = urlsplit(url)
        path = parts.path
        if parts.scheme in ("http", "https") and "/crl/" in path and path.endswith(".crl"):
            return f"{parts.scheme}://{parts.netloc}{path[: path.rindex('/crl/')]}"
    return None


def subca_for(crl_urls: list[str], env: dict[str, str] | None = None) -> SubCa:
    """The Sub-CA that certifies the renewal of a certificate with these CRL distribution points."""
    env = dict(os.environ) if env is None else env
    url = env.get(SUBCA_URL_ENV) or subca_base_from_crl(crl_urls)
    if not url:
        raise SubCaUnknown(f"no Sub-CA to send the request to: set {SUBCA_URL_ENV}")
    return HttpTestSubCa(url, token=env.get(SUBCA_TOKEN_ENV) or None,
                         timeout_s=float(env.get(SUBCA_TIMEOUT_ENV) or 30.0))
