"""Fixtures of the PKI tests: one test SM-PKI per session, served by a real test CA on a free
port (so CRL distribution points resolve), a second unrelated PKI as "unknown CA", and fresh
gateways for tests that revoke."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator

import pytest

from pki.testca import TestCA
from pki.testpki import Entity, TestPki, init_test_pki

_serials = itertools.count(16_950_000)

FreshGateway = Callable[[], Entity]


@pytest.fixture(scope="session")
def test_ca(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestCA]:
    directory = tmp_path_factory.mktemp("smpki") / "pki"
    ca = TestCA(directory).start()  # bound first: the PKI's CDP URLs need its port
    init_test_pki(directory, gateways=3, base_url=ca.url)
    try:
        yield ca
    finally:
        ca.stop()


@pytest.fixture(scope="session")
def test_pki(test_ca: TestCA) -> TestPki:
    return TestPki(test_ca.directory)


@pytest.fixture(scope="session")
def foreign_pki(tmp_path_factory: pytest.TempPathFactory) -> TestPki:
    """Same names and profile, different keys: certificates from here have an unknown issuer."""
    return init_test_pki(tmp_path_factory.mktemp("foreign") / "pki", gateways=1)


@pytest.fixture(scope="session")
def sender(test_pki: TestPki) -> Entity:
    """A gateway of the session PKI, the sender of CMS containers in the CMS tests."""
    return test_pki.gateway(test_pki.gateway_ids()[0])


@pytest.fixture(scope="session")
def recipient(test_pki: TestPki) -> Entity:
    """An EMT of the session PKI, the recipient of those containers."""
    return test_pki.emts["emt1"]


@pytest.fixture
def fresh_gateway(test_pki: TestPki) -> FreshGateway:
    """Issue a new gateway triple that no other test uses (for revocation tests)."""

    def make() -> Entity:
        return test_pki.issue_gateway(f"ETST01{next(_serials):08d}")

    return make
