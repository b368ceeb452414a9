"""Code shared by the benches in ``bench/``.

A package, not a ``bench/*.py`` module, so ``make bench`` (which runs every ``bench/*.py``) does
not run it. The benches import it as ``bench.common`` with the repository root on ``sys.path``.
"""
