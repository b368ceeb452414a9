"""The gateway lifecycle and its allowed transitions.

``in_stock`` -> ``pre_personalized`` -> ``personalized`` -> ``installed`` -> ``in_operation``;
any state -> ``faulty``; ``in_operation`` -> ``deinstalled``. Two ways back into stock, for a
device that was repaired (``faulty``) or refurbished after removal (``deinstalled``): it then has
to be personalised again, so nothing of its previous identity is trusted.
"""

from __future__ import annotations

from enum import StrEnum

from core.errors import Conflict


class GatewayState(StrEnum):
    IN_STOCK = "in_stock"
    PRE_PERSONALIZED = "pre_personalized"  # Vorpersonalisierung by the manufacturer
    PERSONALIZED = "personalized"  # operational certificates installed by the GWA
    INSTALLED = "installed"  # mounted at a connection point
    IN_OPERATION = "in_operation"  # commissioned (Inbetriebnahme)
    DEINSTALLED = "deinstalled"
    FAULTY = "faulty"


S = GatewayState
TRANSITIONS: dict[GatewayState, frozenset[GatewayState]] = {
    S.IN_STOCK: frozenset({S.PRE_PERSONALIZED, S.FAULTY}),
    S.PRE_PERSONALIZED: frozenset({S.PERSONALIZED, S.FAULTY}),
    S.PERSONALIZED: frozenset({S.INSTALLED, S.FAULTY}),
    S.INSTALLED: frozenset({S.IN_OPERATION, S.FAULTY}),
    S.IN_OPERATION: frozenset({S.DEINSTALLED, S.FAULTY}),
    S.DEINSTALLED: frozenset({S.IN_STOCK, S.FAULTY}),
    S.FAULTY: frozenset({S.IN_STOCK}),
}
STATES = tuple(s.value for s in GatewayState)


class IllegalTransition(Conflict):
    code = "illegal_state_transition"


def allowed_next(state: str) -> list[str]:
    return sorted(s.value for s in TRANSITIONS[GatewayState(state)])


def check_transition(current: str, target: str, what: str = "gateway") -> None:
    """Raise unless ``current -> target`` is allowed. Staying in the same state is allowed (a no-op),
    so a retried activity does not fail on its own earlier success."""
    if current == target:
        return
    if GatewayState(target) not in TRANSITIONS[GatewayState(current)]:
        raise IllegalTransition(
            f"{what} cannot go from {current} to {target}; allowed: {', '.join(allowed_next(current))}",
            details={"from": current, "to": target, "allowed": allowed_next(current)},
        )


def transition_pairs() -> list[tuple[str, str]]:
    """Every allowed (from, to) pair, for set-based checks in imports."""
    return [(a.value, b.value) for a, targets in TRANSITIONS.items() for b in targets]
