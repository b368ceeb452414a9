"""Sending meter data deliveries to EMTs (docs/protocol.md 14.1-14.3) from each gateway's durable
outbox (table ``delivery``), until the EMT has them.

Per attempt: TLS as the gateway (its own SMGW TLS certificate) to the endpoint of the profile's
communication profile, SNI = the endpoint's host, the server must present the EMT TLS certificate
installed for the recipient; ``POST <endpoint path>`` with the XML sealed anew (the gateway's SIG
key, the recipient's installed ENC certificate) and the delivery's ``x-CID`` (the same on every
attempt). Answers: 2xx done; 400/403/413/422 refused, final (the reason from the answer's
``<error reason>`` is recorded; so is any other 4xx but 408 and 429 [simulator choice]); anything
else (429, 503, other 5xx), no answer or no connection: again later, 30 s
doubling to 1 h, for 7 days after the delivery was built (``Retry-After`` of a 429/503 is honoured).
A server certificate that is not the recipient's: nothing is sent, the attempt counts as failed
(``untrusted``). At most ``delivery_concurrency`` delivery connections are open at once.
"""

from __future__ import annotations

import asyncio
import time
import xml.etree.ElementTree as ET  # errors only; parsing goes through defusedxml
from collections.abc import Iterable
from urllib.parse import urlsplit

import defusedxml.ElementTree as DET
import h11
import structlog
from defusedxml import DefusedXmlException

from pki import cms
from simulator.certificates import Certificates
from simulator.config import SimulatorSettings
from simulator.connections import Answer, ContactFailed, Dialer, InboundClient, UntrustedPeer
from simulator.credentials import FleetCredentials
from simulator.errors import CommandError
from simulator.fleetfaults import FleetFaults
from simulator.runtime import GatewayRuntime, PendingDelivery
from simulator.state import LEVEL_ERROR, LEVEL_WARNING, OUTCOME_FAILURE, GatewayState
from simulator.store import DeliveryRow, Store

log = structlog.get_logger("simulator.deliveries")

FINAL_REFUSALS = frozenset({400, 403, 413, 422})  # docs/protocol.md 14.3
RETRYABLE_4XX = frozenset({408, 429})  # any other 4xx is final too [simulator choice]: a repeat cannot help
UNTRUSTED_LOG_EVERY_S = 60.0


class EmtOutbox:
    def __init__(self, settings: SimulatorSettings, store: Store, gateways: dict[str, GatewayRuntime],
                 faults: FleetFaults, certificates: Certificates, creds: FleetCredentials, dialer: Dialer) -> None:
        self.settings = settings
        self.store = store
        self.gateways = gateways
        self.faults = faults
        self.certificates = certificates
        self.creds = creds
        self.dialer = dialer
        self.connections = asyncio.Semaphore(settings.delivery_concurrency)
        self.open_connections = 0
        self._stopping = False

    def restore(self) -> int:
        """Put the deliveries a stopped simulator left unacknowledged back into the gateways' outboxes."""
        n = 0
        for row in self.store.pending_deliveries():
            rt = self.gateways.get(row.gateway)
            if rt is not None:
                rt.emt_pending.append(_pending(row))
                n += 1
        return n

    def stop(self) -> None:
        self._stopping = True

    def add(self, rt: GatewayRuntime, rows: Iterable[DeliveryRow]) -> None:
        rt.emt_pending.extend(_pending(r) for r in rows)

    def pump(self, now: float) -> None:
        """Start sending for every gateway with a delivery due (one sending task per gateway)."""
        if self._stopping:
            return
        for rt in self.gateways.values():
            if not rt.emt_pending or rt.emt_sending is not None:
                continue
            if min(p.next_at for p in rt.emt_pending) > now:
                continue
            if self.faults.in_force(rt.state, "offline") is not None:
                continue  # no WAN: the data waits
            rt.emt_sending = rt.spawn(self._send(rt))

    # -- sending
    async def _send(self, rt: GatewayRuntime) -> None:
        async with self.connections:
            self.open_connections += 1
            try:
                while not self._stopping:
                    now = time.time()
                    due = [p for p in rt.emt_pending if p.next_at <= now]
                    if not due:
                        return
                    first = due[0]
                    group = [p for p in due if p.uri == first.uri and p.recipient == first.recipient]
                    try:
                        await self._send_group(rt, group)
                    except (asyncio.CancelledError, KeyboardInterrupt):
                        raise
                    except Exception as err:  # a bug must not send the same delivery in a tight loop
                        log.exception("simulator.delivery_failed", gateway=rt.state.gateway_id)
                        self._failed(rt, [p for p in group if p in rt.emt_pending], None,
                                     f"internal: {type(err).__name__}")
            finally:
                self.open_connections -= 1
                rt.emt_sending = None
                rt.state.persist(self.store)

    async def _send_group(self, rt: GatewayRuntime, group: list[PendingDelivery]) -> None:
        """Deliver ``group`` (same endpoint and recipient) over one connection, reconnecting when
        the receiver closes it; what could not be sent waits for its next attempt."""
        gw = rt.state
        uri, recipient = group[0].uri, group[0].recipient
        host, port, path = self.dialer.resolve(uri, self.settings.delivery_default_port)
        sni = urlsplit(uri).hostname or host
        remaining = list(group)
        while remaining and not self._stopping:
            trusted = gw.certificates.get(f"emt:{recipient}:tls")
            try:
                reader, writer = await self.dialer.open_emt(rt, host, port, sni,
                                                            trusted["sha256"] if trusted else None)
            except UntrustedPeer as err:
                gw.count("deliveries", "untrusted")
                self._log_untrusted(gw, recipient, uri, err.reason)
                self._failed(rt, remaining, None, err.reason)
                return
            except ContactFailed as err:
                log.info("simulator.delivery_unreachable", gateway=gw.gateway_id, uri=uri, error=err.reason)
                self._failed(rt, remaining, None, err.reason)
                return
            client = InboundClient(reader, writer, f"{sni}:{port}")
            try:
                while remaining:
                    item = remaining[0]
                    body = self._body(rt, item)
                    if body is None:
                        remaining.pop(0)
                        continue
                    try:
                        answer = await client.request(path, body, item.cid, self.settings.delivery_timeout_s)
                    except (OSError, TimeoutError, ConnectionError, h11.ProtocolError) as err:
                        self._failed(rt, remaining, None, f"{type(err).__name__}: {err}")
                        return
                    remaining.pop(0)
                    self._answered(rt, item, answer)
                    if answer.closing:
                        break  # reconnect for the rest
            finally:
                await client.close()

    def _body(self, rt: GatewayRuntime, item: PendingDelivery) -> bytes | None:
        """The delivery sealed for its recipient now (None when it is gone from the store)."""
        gw = rt.state
        xml = self.store.delivery_xml(item.id)
        if xml is None:
            rt.emt_pending.remove(item)
            return None
        enc = gw.certificates.get(f"emt:{item.recipient}:enc")
        if enc is None:
            self._failed(rt, [item], None, f"no ENC certificate of {item.recipient} is installed")
            return None
        try:
            cert = self.certificates.get(enc["sha256"])
        except CommandError as err:
            self._failed(rt, [item], None, err.text)
            return None
        sig = self.creds.keys(gw.gateway_id, "sig")
        return cms.seal(xml, sign_key=sig.key, sign_cert=sig.cert, recipient_cert=cert)

    def _answered(self, rt: GatewayRuntime, item: PendingDelivery, answer: Answer) -> None:
        gw, status = rt.state, answer.status
        if 200 <= status < 300:
            self._done(rt, item, "delivered", status, None)
            gw.count("deliveries", "delivered")
        elif status in FINAL_REFUSALS or (400 <= status < 500 and status not in RETRYABLE_4XX):
            reason = _reason(answer.body)
            self._done(rt, item, "refused", status, reason)
            gw.count("deliveries", "refused")
            gw.log("system", LEVEL_WARNING, OUTCOME_FAILURE,
                   f"delivery {item.cid} of profile {item.profile} refused by {item.recipient}: {status} {reason}")
            log.info("simulator.delivery_refused", gateway=gw.gateway_id, recipient=item.recipient, status=status,
                     reason=reason, profile=item.profile)
        else:
            retry_after = None
            if status in (429, 503):
                try:
                    retry_after = float(answer.headers.get("retry-after", ""))
                except ValueError:
                    retry_after = None
            self._failed(rt, [item], status, _reason(answer.body) or f"HTTP {status}", retry_after=retry_after)

    def _failed(self, rt: GatewayRuntime, items: list[PendingDelivery], status: int | None, detail: str,
                retry_after: float | None = None) -> None:
        """An attempt that did not reach the EMT: try again after the back-off, or give up."""
        s, now = self.settings, time.time()
        for item in items:
            item.attempts += 1
            if now - item.created > s.delivery_give_up_s:
                self._done(rt, item, "gave_up", status, detail)
                rt.state.count("deliveries", "gave_up")
                rt.state.log("system", LEVEL_ERROR, OUTCOME_FAILURE,
                             f"delivery {item.cid} of profile {item.profile} to {item.recipient} given up: {detail}")
                continue
            delay = min(s.delivery_retry_first_s * 2 ** (item.attempts - 1), s.delivery_retry_max_s)
            if retry_after is not None:
                delay = max(delay, min(retry_after, s.delivery_retry_max_s))
            item.next_at = now + delay
            rt.state.count("deliveries", "retried")
            self.store.delivery_attempted(item.id, next_at=item.next_at, attempts=item.attempts, status=status,
                                          detail=detail[:300])

    def _done(self, rt: GatewayRuntime, item: PendingDelivery, state: str, status: int | None,
              detail: str | None) -> None:
        if item in rt.emt_pending:
            rt.emt_pending.remove(item)
        self.store.delivery_done(item.id, state=state, attempts=item.attempts + 1 if state != "gave_up"
                                 else item.attempts, status=status, detail=detail[:300] if detail else None,
                                 at=time.time())

    def _log_untrusted(self, gw: GatewayState, recipient: str, uri: str, reason: str) -> None:
        rt = self.gateways.get(gw.gateway_id)
        now = time.time()
        log.warning("simulator.delivery_untrusted", gateway=gw.gateway_id, recipient=recipient, uri=uri, reason=reason)
        if rt is not None and now - rt.last_untrusted_log >= UNTRUSTED_LOG_EVERY_S:
            rt.last_untrusted_log = now
            gw.log("system", LEVEL_ERROR, OUTCOME_FAILURE, f"delivery to {recipient} not sent: {reason}")


def _pending(row: DeliveryRow) -> PendingDelivery:
    return PendingDelivery(id=row.id, profile=row.profile, recipient=row.recipient, uri=row.uri, cid=row.cid,
                           created=row.created, next_at=row.next_at, attempts=row.attempts)


def _reason(body: bytes) -> str | None:
    """The ``reason`` of an ``<error xmlns="urn:gridgate:mdm:1" reason="..."/>`` answer (not CMS)."""
    if not body:
        return None
    try:
        root = DET.fromstring(body, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except (ET.ParseError, DefusedXmlException, ValueError):  # an answer we cannot read has no reason
        return None
    reason = root.get("reason")
    return reason[:100] if reason else None
