"""Lets every tool run both ways: ``python tools/X.py`` and ``python -m tools.X``, with any python.

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

A script run by another python than the project's venv (``python3 tools/X.py``,
as the docs write it, from a shell where the venv is not active) would fail on
its first third-party import. When that python lacks the project (the
``ledgerdns`` distribution is not installed in it, or it is older than 3.11),
this module runs the same command again with ``.venv/bin/python``; with no venv
there it says in one line which python to use and exits 2. So this module
itself imports the standard library only and keeps to syntax old pythons read.

``tests/integration/test_tools.py`` runs every tool both ways;
``tests/integration/test_papercuts_tools.py`` runs one with a python lacking the project.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
MIN_PYTHON = (3, 11)
EXIT_USAGE = 2


def has_project() -> bool:
    """Whether this python can run the tools: new enough, with ledgerdns (and so its deps) installed."""
    if sys.version_info < MIN_PYTHON:
        return False
    import importlib.metadata  # here: not in pythons before 3.8

    try:
        importlib.metadata.distribution("ledgerdns")
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def _in_venv() -> bool:
    try:
        return Path(sys.prefix).resolve() == VENV.resolve()
    except OSError:
        return False


def _use_the_venv() -> None:
    """Run this command again with the project's venv python, or say which python to use."""
    python = VENV / "bin" / "python"
    script = sys.argv[0] or "tools/X.py"
    if not _in_venv() and os.access(python, os.X_OK):
        sys.stdout.flush()
        os.execv(str(python), [str(python), *sys.argv])  # never returns
    if _in_venv():
        problem = f"the project is not installed in {VENV}"
    else:
        problem = (f"it needs Python >= 3.11 with the project installed, which {sys.executable} "
                   f"lacks, and there is no {python}")  # fmt: skip
    sys.stderr.write(f"error: {script}: {problem}: run `make venv` in {ROOT}, "
                     f"then `{python} {script}`\n")  # fmt: skip
    sys.exit(EXIT_USAGE)


if not has_project():  # asked before ROOT is on the path: its ledgerdns.egg-info is no install
    _use_the_venv()
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
