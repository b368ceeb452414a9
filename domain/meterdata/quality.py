"""The quality of one value, as one byte per value in storage, and what it is in MSCONS (QTY
qualifier). Method and reason of a substitute or correction are kept beside it (notes)."""

from __future__ import annotations

from enum import IntEnum


class Quality(IntEnum):
    """Stored codes. ``MISSING`` also marks a slot nobody delivered a value for."""

    TRUE = 0  # Wahrer Wert
    SUBSTITUTE = 1  # Ersatzwert (estimated by a rule, or corrected by hand)
    PROVISIONAL = 2  # vorläufiger Wert
    MISSING = 3  # fehlender Wert
    PROPOSED = 4  # Vorschlagswert
    UNUSABLE = 5  # nicht verwendbarer Wert

    @property
    def mscons(self) -> str:
        """The MSCONS QTY qualifier (MIG: 220 true, 67 substitute, Z18 provisional, Z30 missing,
        201 proposed, 20 unusable)."""
        return _MSCONS[self]


_MSCONS = {Quality.TRUE: "220", Quality.SUBSTITUTE: "67", Quality.PROVISIONAL: "Z18", Quality.MISSING: "Z30",
           Quality.PROPOSED: "201", Quality.UNUSABLE: "20"}

# Substitution methods (MSCONS STS qualifier Z32, "Ersatzwertbildungsverfahren"), the codes named in
# the domain brief; a method gridgate uses that has no code of its own there is sent as the closest
# one and named in the notes (docs/mdm.md, "Codes").
METHOD_INTERPOLATION = "Z92"  # linear interpolation of a short gap
METHOD_HOLD = "Z93"  # hold value
METHOD_STATISTICAL = "ZJ2"  # comparable days; a standard load profile scaled to the meter
STS_SUBSTITUTION_METHOD = "Z32"
STS_SUBSTITUTION_REASON = "Z40"
STS_PLAUSIBILITY_NOTE = "Z33"
STS_CORRECTION_REASON = "Z34"
