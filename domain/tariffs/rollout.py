"""A profile rollout as one plan: the profiles to write and delete (``service.plan_profiles``), the
certificates the gateway needs for them (its EMTs', the GWA's at commissioning) and the master data
that keeps the plan from being complete."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession

from core.errors import Conflict
from domain.certificates import selection
from domain.certificates.selection import Installable
from domain.tariffs import service as tariffs
from domain.tariffs.service import Desired, ReadoutTarget


class MasterDataIncomplete(Conflict):
    code = "master_data_incomplete"


@dataclass(frozen=True)
class Rollout:
    gateway: str
    certificates: list[Installable] = field(default_factory=list)
    profiles: list[Desired] = field(default_factory=list)  # to write: meter, communication, evaluation
    deletes: list[tuple[str, str]] = field(default_factory=list)  # (kind, profile id): evaluation first
    readouts: list[ReadoutTarget] = field(default_factory=list)
    meters: list[tuple[str, str]] = field(default_factory=list)  # (meter id, LMN interface)
    problems: list[str] = field(default_factory=list)


async def plan_rollout(session: AsyncSession, gateway: str, now: dt.datetime, *, order_ids: Sequence[int] = (),
                       write_all: bool = False, with_gwa_certificates: bool = False) -> Rollout:
    """The rollout of ``order_ids`` (empty: every current order) with the problems found.
    ``write_all``: every desired profile, whatever the history says (commissioning);
    ``with_gwa_certificates``: the GWA's certificates go to the gateway too."""
    wanted = sorted(set(order_ids)) or None
    if wanted:
        await tariffs.check_orders_exist(session, wanted)
    plan = await tariffs.plan_profiles(session, gateway, order_ids=wanted)
    chosen = plan.desired if write_all else plan.writes
    emts = sorted({d.content.get("recipient") or d.content["peer"] for d in chosen
                   if d.kind in ("evaluation", "communication")})
    certs, problems = await selection.emt_certificates(session, emts, now)
    if with_gwa_certificates:
        gwa, gwa_problems = await selection.gwa_certificates(session, now)
        certs, problems = gwa + certs, gwa_problems + problems
    return Rollout(gateway=plan.gateway, certificates=certs, profiles=chosen, deletes=plan.deletes,
                   readouts=plan.readouts, meters=plan.meters, problems=[*plan.problems, *problems])


async def complete_rollout(session: AsyncSession, gateway: str, now: dt.datetime, *, order_ids: Sequence[int] = (),
                           write_all: bool = False, with_gwa_certificates: bool = False) -> Rollout:
    """:func:`plan_rollout`, refused (``master_data_incomplete``) when anything keeps it from being
    complete."""
    rollout = await plan_rollout(session, gateway, now, order_ids=order_ids, write_all=write_all,
                                 with_gwa_certificates=with_gwa_certificates)
    if rollout.problems:
        raise MasterDataIncomplete("; ".join(rollout.problems))
    return rollout
