"""Lets every tool run both ways: ``python tools/X.py`` and ``python -m tools.X``.

`chain` and `ledgerdns` come from the project's editable install; `tools` (and
`tests`, which a few tools use) are not installed and are imported from the
checkout. ``python -m tools.X``, run in the checkout, has its root on `sys.path`
already; ``python tools/X.py`` has ``tools/`` there instead, so ``import
tools.localnet`` fails. Every tool with a command line therefore starts with::

    if not __package__:  # run as `python tools/X.py`: make `tools` importable
        import _bootstrap  # noqa: F401

which, run as a script, finds this module next to it (``tools/`` is on the path)
and puts the checkout's root first on `sys.path`. Under ``-m``, or imported as
``tools.X``, `__package__` is ``"tools"`` and nothing happens. Library modules
(no ``__main__``) are only imported, as ``tools.X``, and need nothing.

``tests/integration/test_tools.py`` runs every tool both ways.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
