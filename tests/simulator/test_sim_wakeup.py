"""Wake-up checks as a gateway must make them (docs/protocol.md 2.3): a packet with a wrong
signature, a stale timestamp, a wrong recipient, a replayed or older timestamp, or garbage is
ignored silently; a valid one opens exactly one management connection.

"Ignored" is proven without timing: UDP on loopback keeps order, so after the bad packet a valid
one is sent and, once its connection is up, the gateway's counters show the bad packet was
refused for the expected reason and only one contact happened."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from pki import wakeup
from pki.testpki import TestPki
from simulator.run import Simulator
from tests.simulator.conftest import SimFactory, control, fleet, gid, send_raw, send_wakeup
from tests.simulator.gwa_stub import GwaStub


def counters(sim: Simulator, g: str) -> dict[str, Any]:
    return fleet(sim).gateways[g].state.counters


async def test_bad_wakeups_are_ignored_then_a_valid_one_connects(sim: Simulator, stub: GwaStub,
                                                                 sim_pki: TestPki) -> None:
    g = gid(0)
    now = int(time.time())
    send_wakeup(sim, g, sim_pki, key=ec.generate_private_key(ec.BrainpoolP256R1()))  # not the GWA's key
    send_wakeup(sim, g, sim_pki, key=sim_pki.gateway(g).sig.key)  # a valid SM-PKI key, but not the GWA's
    send_wakeup(sim, g, sim_pki, timestamp=now - 1000)  # outside the 300 s window
    send_wakeup(sim, g, sim_pki, timestamp=now + 1000)
    send_raw(sim, b"WU\x01" + b"\x00" * 20)  # garbage that routes nowhere
    send_raw(sim, wakeup.build(g, sim_pki.gwa.sig.key)[:60])  # truncated: routed to g, malformed
    send_wakeup(sim, g, sim_pki)
    await stub.wait_link(g)
    c = counters(sim, g)
    assert c["wakeups_ignored"] == {"bad_signature": 2, "stale": 2, "malformed": 1}
    assert c["wakeups_accepted"] == 1 and c["contacts"] == {"wakeup": 1}
    async with control(sim) as api:
        logs = (await api.get(f"/gateways/{g}/logs/system")).json()
    assert any(e["text"].startswith("wake-up rejected") and e["level"] == 2 and e["outcome"] == 1 for e in logs)


async def test_replay_and_older_timestamps_are_refused(sim: Simulator, stub: GwaStub, sim_pki: TestPki) -> None:
    g = gid(1)
    now = int(time.time())
    packet = send_wakeup(sim, g, sim_pki, timestamp=now)
    link = await stub.wait_link(g)
    await link.close()
    stub.forget(g)
    send_raw(sim, packet)  # the same packet again
    send_wakeup(sim, g, sim_pki, timestamp=now)  # a fresh signature over the same timestamp
    send_wakeup(sim, g, sim_pki, timestamp=now - 5)  # older than the last accepted
    send_wakeup(sim, g, sim_pki, timestamp=now + 1)  # strictly newer: accepted
    await stub.wait_link(g)
    c = counters(sim, g)
    assert c["wakeups_ignored"] == {"replay": 3} and c["wakeups_accepted"] == 2


async def test_replay_state_survives_a_restart(make_sim: SimFactory, stub: GwaStub, sim_pki: TestPki,
                                               tmp_path: Path) -> None:
    g = gid(0)
    sim = await make_sim(state=tmp_path / "state")
    packet = send_wakeup(sim, g, sim_pki)
    await (await stub.wait_link(g)).close()
    stub.forget(g)
    await sim.stop()
    sim2 = await make_sim(state=tmp_path / "state")
    send_raw(sim2, packet)
    send_wakeup(sim2, g, sim_pki, timestamp=int(time.time()) + 2)
    await stub.wait_link(g)
    assert counters(sim2, g)["wakeups_ignored"] == {"replay": 1}


async def test_wrong_recipient_per_gateway_addresses(make_sim: SimFactory, stub: GwaStub, sim_pki: TestPki) -> None:
    """With one address per gateway, gateway 0 receives a packet addressed to gateway 1: it drops it
    (wrong_recipient) and nobody connects; the right packet on the right address works."""
    sim = await make_sim(wakeup_mode="per_gateway")
    rt0, rt1 = fleet(sim).gateways[gid(0)], fleet(sim).gateways[gid(1)]
    send_wakeup(sim, gid(1), sim_pki, port=rt0.wakeup_port)
    send_wakeup(sim, gid(0), sim_pki, port=rt0.wakeup_port)
    await stub.wait_link(gid(0))
    assert counters(sim, gid(0))["wakeups_ignored"] == {"wrong_recipient": 1}
    assert counters(sim, gid(1))["wakeups_accepted"] == 0 and gid(1) not in stub.links
    send_wakeup(sim, gid(1), sim_pki, port=rt1.wakeup_port)
    await stub.wait_link(gid(1))


async def test_shared_socket_drops_foreign_recipients(sim: Simulator, stub: GwaStub, sim_pki: TestPki) -> None:
    send_wakeup(sim, "EABC0112345678", sim_pki)  # a valid ID this simulator does not run
    send_wakeup(sim, gid(2), sim_pki)
    await stub.wait_link(gid(2))
    assert fleet(sim).unrouted_wakeups == 1
    assert sum(counters(sim, gid(i))["wakeups_accepted"] for i in range(3)) == 1


async def test_connected_gateway_keeps_its_connection(sim: Simulator, stub: GwaStub, sim_pki: TestPki) -> None:
    g = gid(0)
    now = int(time.time())
    send_wakeup(sim, g, sim_pki, timestamp=now)
    link = await stub.wait_link(g)
    send_wakeup(sim, g, sim_pki, timestamp=now + 1)
    assert (await link.request("GET", "objects/1-0000600100ff/attributes/2")).status == 200
    c = counters(sim, g)
    assert c["wakeups_accepted"] == 2 and c["contacts"] == {"wakeup": 1} and stub.links[g] is link


async def test_offline_gateway_ignores_wakeups(sim: Simulator, stub: GwaStub, sim_pki: TestPki) -> None:
    async with control(sim) as api:
        assert (await api.put(f"/gateways/{gid(0)}/faults/offline")).status_code == 200
        send_wakeup(sim, gid(0), sim_pki)
        send_wakeup(sim, gid(1), sim_pki)
        await stub.wait_link(gid(1))
        assert counters(sim, gid(0))["wakeups_ignored"] == {"offline": 1}
        assert (await api.delete(f"/gateways/{gid(0)}/faults/offline")).json()["cleared"] is True
    send_wakeup(sim, gid(0), sim_pki, timestamp=int(time.time()) + 1)
    await stub.wait_link(gid(0))
