"""``gridgate simulate ...``: run the simulated SMGW fleet and talk to a running one.

``run`` starts the fleet in this process; ``status``, ``fault``, ``fleet``, ``contact``, ``event``,
``deliver`` and ``deliveries`` talk to a running simulator's control API on 127.0.0.1 (``--control-port``, default
``GRIDGATE_SIMULATOR_CONTROL_PORT``); ``firmware-image`` builds a signed image offline.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer

from simulator.config import SimulatorSettings

app = typer.Typer(no_args_is_help=True, help="Simulated SMGW fleet (run, status, faults).",
                  pretty_exceptions_enable=False)

ControlPort = Annotated[int | None, typer.Option("--control-port", help="control API port of the running simulator")]


def _settings(**overrides: Any) -> SimulatorSettings:
    base = SimulatorSettings()
    return base.model_copy(update={k: v for k, v in overrides.items() if v is not None})


def _var_dir() -> Path:
    from core.config import get_settings

    return get_settings().var_dir


def _die(message: str, code: int = 2) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def _call(method: str, path: str, port: int | None, body: dict[str, Any] | None = None) -> Any:
    s = SimulatorSettings()
    url = f"http://{s.control_host}:{port or s.control_port}{path}"
    try:
        resp = httpx.request(method, url, json=body, timeout=30)
    except httpx.HTTPError as err:
        raise _die(f"no simulator answers on {url} ({type(err).__name__}); is `gridgate simulate run` up?") from None
    data = resp.json() if resp.headers.get("content-type", "").startswith("application/json") else resp.text
    if resp.status_code >= 400:
        msg = data.get("error", {}).get("message", data) if isinstance(data, dict) else data
        raise _die(f"{msg} (HTTP {resp.status_code})")
    return data


def _print(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, default=str))


@app.command()
def run(
    gateways: Annotated[int | None, typer.Option("--gateways", "-n", help="fleet size (default 50)")] = None,
    headend: Annotated[str | None, typer.Option("--headend", help="HOST:PORT of the head-end management port")] = None,
    pki: Annotated[Path | None, typer.Option("--pki", help="test SM-PKI directory (default var/testpki)")] = None,
    state: Annotated[Path | None, typer.Option("--state", help="state directory (default var/simulator)")] = None,
    control_port: ControlPort = None,
    udp_port: Annotated[int | None, typer.Option("--udp-port", help="wake-up UDP port (shared mode)")] = None,
    wakeup_mode: Annotated[str | None, typer.Option("--wakeup-mode", help="shared | per_gateway")] = None,
    offline_pct: Annotated[float | None, typer.Option("--offline-pct", help="% of gateways offline")] = None,
    flaky_pct: Annotated[float | None, typer.Option("--flaky-pct", help="% of gateways flaky")] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="seed of meter values and fault selection")] = None,
    cyclic_contact_s: Annotated[float | None, typer.Option("--cyclic-contact-s", help="0 disables")] = None,
    meters_paired: Annotated[bool | None, typer.Option(
        "--meters-paired", help="gateways created now start with their meters paired (in operation)")] = None,
    time_scale: Annotated[float | None, typer.Option(
        "--time-scale", help="catch-up speed of deliveries: simulated seconds per real second (>= 1)")] = None,
    backfill_days: Annotated[float | None, typer.Option(
        "--backfill-days", help="on start, deliver the last D days first (at --time-scale)")] = None,
    delivery_concurrency: Annotated[int | None, typer.Option(
        "--delivery-concurrency", help="delivery connections to EMTs open at once")] = None,
) -> None:
    """Run N simulated gateways until Ctrl-C / SIGTERM."""
    from core.config import get_settings
    from core.logging import configure_logging
    from simulator.run import main

    settings = _settings(gateways=gateways, headend=headend, pki_dir=pki, state_dir=state, control_port=control_port,
                         udp_port=udp_port, wakeup_mode=wakeup_mode, offline_pct=offline_pct, flaky_pct=flaky_pct,
                         seed=seed, cyclic_contact_s=cyclic_contact_s, meters_paired=meters_paired,
                         time_scale=time_scale, backfill_days=backfill_days,
                         delivery_concurrency=delivery_concurrency)
    settings = SimulatorSettings.model_validate(settings.model_dump())
    g = get_settings()
    configure_logging(settings.log_level or g.log_level, g.log_format)
    main(settings, g.var_dir)


@app.command()
def status(gateway: Annotated[str | None, typer.Argument(help="one gateway ID")] = None,
           control_port: ControlPort = None) -> None:
    """Fleet summary (incl. simulator CPU time and RSS), or one gateway's state and counters."""
    _print(_call("GET", f"/gateways/{gateway}" if gateway else "/status", control_port))


@app.command()
def fault(
    gateway: Annotated[str, typer.Argument(help="gateway ID")],
    kind: Annotated[str, typer.Argument(help="offline, flaky, slow, reject, firmware_verification_failure, "
                                             "clock_drift, missing_meter, tamper_alarm, revoked_certificate, "
                                             "foreign_certificate; in delivered data: gaps, duplicates, late, "
                                             "spikes, zero_periods, register_reset, status_error, clock_shift, "
                                             "voltage_excursion")],
    param: Annotated[str | None, typer.Option("--param", help="e.g. seconds for slow/clock_drift, meter ID, "
                                                               "command kind for reject, rate for flaky, share "
                                                               "for gaps, minutes for clock_shift, L1:200 for "
                                                               "voltage_excursion (docs/simulator.md)")] = None,
    since: Annotated[str | None, typer.Option("--since", help="a data fault acts on values from this time "
                                                               "(ISO or Unix seconds; default now)")] = None,
    off: Annotated[bool, typer.Option("--off", help="clear the fault")] = False,
    control_port: ControlPort = None,
) -> None:
    """Set (or with --off clear) a fault on one gateway."""
    if off:
        _print(_call("DELETE", f"/gateways/{gateway}/faults/{kind}", control_port))
    else:
        _print(_call("PUT", f"/gateways/{gateway}/faults/{kind}", control_port, {"param": param, "since": since}))


@app.command()
def fleet(
    offline_pct: Annotated[float | None, typer.Option("--offline-pct")] = None,
    flaky_pct: Annotated[float | None, typer.Option("--flaky-pct")] = None,
    share: Annotated[list[str] | None, typer.Option(
        "--share", help="KIND=PCT: a data fault (gaps, duplicates, late, ...) on PCT % of the fleet; 0 clears")] = None,
    control_port: ControlPort = None,
) -> None:
    """Fleet-level switch: X % of the gateways offline, Y % flaky, shares with data faults."""
    shares: dict[str, float] = {}
    for item in share or []:
        kind, sep, pct = item.partition("=")
        try:
            shares[kind.strip()] = float(pct)
        except ValueError:
            raise _die(f"--share {item!r} is not KIND=PCT") from None
        if not sep:
            raise _die(f"--share {item!r} is not KIND=PCT")
    _print(_call("PUT", "/fleet/faults", control_port,
                 {"offline_pct": offline_pct, "flaky_pct": flaky_pct, "shares": shares}))


@app.command()
def deliver(
    gateway: Annotated[str, typer.Argument(help="gateway ID")],
    profile: Annotated[str, typer.Argument(help="evaluation profile ID")],
    reason: Annotated[str | None, typer.Option("--reason", help="on_demand (default; TAF 9: feed_in), final, ...")]
    = None,
    control_port: ControlPort = None,
) -> None:
    """Make a gateway deliver an evaluation profile's data to its EMT now (TAF 6 / TAF 9 on request)."""
    _print(_call("POST", f"/gateways/{gateway}/deliveries", control_port, {"profile": profile, "reason": reason}))


@app.command()
def deliveries(
    gateway: Annotated[str, typer.Argument(help="gateway ID")],
    state: Annotated[str | None, typer.Option("--state", help="pending, delivered, refused, gave_up")] = None,
    limit: Annotated[int, typer.Option("--limit")] = 20,
    control_port: ControlPort = None,
) -> None:
    """A gateway's meter data deliveries to EMTs, newest first."""
    query = f"?limit={limit}" + (f"&state={state}" if state else "")
    _print(_call("GET", f"/gateways/{gateway}/deliveries{query}", control_port))


@app.command()
def contact(gateway: Annotated[str, typer.Argument()], control_port: ControlPort = None) -> None:
    """Make a gateway open its management connection now (as a cyclic contact would)."""
    _print(_call("POST", f"/gateways/{gateway}/contact", control_port, {"reason": "control"}))


@app.command()
def event(
    gateway: Annotated[str, typer.Argument()],
    code: Annotated[str, typer.Argument(help="meter_tamper, meter_missing, power_failure, ...")],
    text: Annotated[str | None, typer.Option("--text")] = None,
    level: Annotated[int, typer.Option("--level")] = 3,
    control_port: ControlPort = None,
) -> None:
    """Raise an alarm on a gateway; it is delivered to the head-end's event URI."""
    _print(_call("POST", f"/gateways/{gateway}/events", control_port, {"code": code, "text": text, "level": level}))


@app.command("firmware-image")
def firmware_image(
    flag: Annotated[str, typer.Argument(help="vendor flag: THE, EMH, PPC")],
    version: Annotated[str, typer.Argument()],
    out: Annotated[Path, typer.Option("--out", "-o", help="file to write")],
    size: Annotated[int, typer.Option("--size", help="payload bytes")] = 256 * 1024,
    pki: Annotated[Path | None, typer.Option("--pki")] = None,
    state: Annotated[Path | None, typer.Option("--state")] = None,
) -> None:
    """Build a firmware image signed by the simulated manufacturer (offline)."""
    from simulator.credentials import FleetCredentials
    from simulator.firmware import build_image, image_id
    from simulator.vendors import VENDORS

    vendor = VENDORS.get(flag.upper())
    if vendor is None:
        raise _die(f"vendor flag is one of {', '.join(VENDORS)}")
    s = _settings(pki_dir=pki, state_dir=state)
    creds = FleetCredentials(s.resolved_pki_dir(_var_dir()), s.resolved_state_dir(_var_dir()))
    data = build_image(creds, vendor, version, size)
    out.write_bytes(data)
    typer.echo(f"{out}: {len(data)} bytes, image ID {image_id(vendor, version)}")
