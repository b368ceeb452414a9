"""Certificate renewal: finds what is due and stops honestly where the protocol ends."""

from __future__ import annotations

from tests.fleet import Fleet, run_process

T = "fleet"


async def test_renewal_finds_due_certificates_and_names_the_missing_gateway_command(api, fleet: Fleet,
                                                                                   fleet_operator) -> None:  # type: ignore[no-untyped-def]
    h = fleet_operator.headers
    (i,) = fleet.take(1)
    gid = fleet.gid(i)
    nothing = await run_process(api, h, T, "certificate_renewal", [gid], {"renew_before_days": 30})
    assert nothing["targets"][gid]["result"] == {"due": 0, "renewal": "not_due"}

    due = await run_process(api, h, T, "certificate_renewal", [gid], {"renew_before_days": 730, "usages": ["tls"]})
    target = due["targets"][gid]
    assert target["state"] == "failed" and target["error_type"] == "csr_unavailable"
    assert "request_certificate_signing" in target["error_message"]
    assert target["error_message"].startswith("obtain_certificate_request: 1 certificate(s) due (tls")
    assert fleet.applied(gid) == {}
