"""CRL refresh as an activity would run it: fetch every distribution point named by a trust
store, verify, keep; persisted so another process's validator can use the result."""

from __future__ import annotations

from pathlib import Path

from pki.crl import CrlCache, crl_urls_for, refresh_crls
from pki.testca import TestCA
from pki.testpki import TestPki, init_test_pki
from pki.validation import Reason, Validator


async def test_refresh_fetches_all_distribution_points(test_pki: TestPki) -> None:
    cache = CrlCache()
    store = [test_pki.root, test_pki.subca, test_pki.gwa.tls.cert]
    assert set(crl_urls_for(store)) == {test_pki.config.crl_url("root"), test_pki.config.crl_url("subca")}
    report = await refresh_crls(cache, store)
    assert report.ok and set(report.refreshed) == set(crl_urls_for(store))
    assert all(cache.cached(u) is not None for u in report.refreshed)
    again = await cache.refresh([test_pki.root, test_pki.subca])  # default: what the cache holds
    assert set(again.refreshed) == set(report.refreshed)


async def test_refreshed_crls_serve_another_process_offline(tmp_path: Path) -> None:
    with TestCA(tmp_path / "pki") as ca:
        pki = init_test_pki(tmp_path / "pki", base_url=ca.url)
        store = [pki.root, pki.subca, pki.gwa.tls.cert]
        report = await refresh_crls(CrlCache(directory=tmp_path / "crlcache"), store)
        assert report.ok and len(report.refreshed) == 2
    # the CA is gone now; a fresh cache on the same directory still has fresh CRLs
    v = Validator([pki.root], [pki.subca], crl_cache=CrlCache(directory=tmp_path / "crlcache", timeout=1))
    assert v.validate(pki.gwa.sig.cert, "sig").valid
    # without the persisted CRLs: fail closed
    v2 = Validator([pki.root], [pki.subca], crl_cache=CrlCache(timeout=1))
    assert v2.validate(pki.gwa.sig.cert, "sig").reason is Reason.CRL_UNAVAILABLE


async def test_refresh_reports_failures_per_url(test_pki: TestPki, foreign_pki: TestPki) -> None:
    cache = CrlCache(timeout=2)
    # foreign PKI: its CDP (port 8480 default) serves nothing here; ours serves CRLs that do not
    # verify against the foreign CAs
    report = await cache.refresh([foreign_pki.root, foreign_pki.subca],
                                 [test_pki.config.crl_url("subca"), "http://127.0.0.1:9/crl/x.crl"])
    assert not report.ok and not report.refreshed
    assert set(report.failed) == {test_pki.config.crl_url("subca"), "http://127.0.0.1:9/crl/x.crl"}
    assert all(msg.startswith("crl_unavailable") for msg in report.failed.values())

