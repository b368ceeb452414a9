"""``gridgate worker`` for the process benchmark with ``MassProcess`` replaced by
``bench/process_mass_fix.MassProcessStateInInit`` (see there why). Same settings, same code
otherwise: ``worker.main()`` with the registry's workflow list changed in place."""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

if __name__ == "__main__":
    from process_mass_fix import MassProcessStateInInit

    from workflows import registry
    from workflows.mass import MassProcessWorkflow

    registry.WORKFLOWS[:] = [MassProcessStateInInit if w is MassProcessWorkflow else w for w in registry.WORKFLOWS]
    import worker

    worker.main()
