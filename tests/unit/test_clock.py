"""One clock (#14): only `ledgerdns.clock` reads the wall clock; the rest is handed a `Clock`.

The scan is static (`ast`): it follows how `time` and `datetime` were imported
in each module, so ``import time as t; t.time()`` and ``from time import
time_ns`` are caught as well as the plain spelling.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from ledgerdns.clock import SYSTEM_CLOCK, ManualClock

PACKAGE = Path(__file__).resolve().parents[2] / "ledgerdns"
CLOCK_MODULE = PACKAGE / "clock.py"

TIME_READS = frozenset({"time", "time_ns"})  # read the clock whatever the arguments
TIME_READS_BARE = frozenset({"localtime", "gmtime", "ctime", "asctime"})  # when called with none
DATETIME_READS = frozenset({"now", "utcnow", "today"})  # on datetime.datetime / datetime.date


def clock_reads(source: str) -> list[str]:
    """``line: what`` for every wall-clock read in `source`."""
    tree = ast.parse(source)
    time_modules: set[str] = set()
    datetime_modules: set[str] = set()
    date_classes: set[str] = set()  # names bound to datetime.datetime or datetime.date
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "time":
                    time_modules.add(alias.asname or "time")
                elif alias.name == "datetime":
                    datetime_modules.add(alias.asname or "datetime")
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            for alias in node.names:
                if node.module == "time" and alias.name in TIME_READS | TIME_READS_BARE:
                    found.append(f"{node.lineno}: from time import {alias.name}")
                elif node.module == "datetime" and alias.name in ("datetime", "date"):
                    date_classes.add(alias.asname or alias.name)
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            owner, attr = node.value.id, node.attr
            if owner in time_modules and attr in TIME_READS:
                found.append(f"{node.lineno}: {owner}.{attr}")
            elif owner in date_classes and attr in DATETIME_READS:
                found.append(f"{node.lineno}: {owner}.{attr}")
        elif (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Attribute)
            and isinstance(node.value.value, ast.Name)
            and node.value.value.id in datetime_modules
            and node.value.attr in ("datetime", "date")
            and node.attr in DATETIME_READS
        ):
            found.append(f"{node.lineno}: {node.value.value.id}.{node.value.attr}.{node.attr}")
        elif (
            isinstance(node, ast.Call)
            and not node.args
            and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id in time_modules
            and node.func.attr in TIME_READS_BARE
        ) or (
            isinstance(node, ast.Call)
            and len(node.args) == 1
            and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id in time_modules
            and node.func.attr == "strftime"  # with no time tuple: now
        ):
            found.append(f"{node.lineno}: {node.func.value.id}.{node.func.attr}()")
    return sorted(found)


@pytest.mark.parametrize(
    "source",
    [
        "import time\nx = time.time()",
        "import time\nx = time.time_ns() // 1_000_000",
        "import time as t\nnow = t.time",  # a reference is a read waiting to happen
        "from time import time_ns",
        "import time\nstamp = time.ctime()",
        "import time\nstamp = time.strftime('%Y')",
        "import datetime\nd = datetime.datetime.now(datetime.UTC)",
        "import datetime as dt\nd = dt.date.today()",
        "from datetime import datetime\nd = datetime.utcnow()",
        "from datetime import date as D\nd = D.today()",
    ],
)
def test_the_scan_finds_a_clock_read(source: str) -> None:
    assert clock_reads(source)


@pytest.mark.parametrize(
    "source",
    [
        "import time\nstart = time.monotonic(); d = time.perf_counter() - start",
        "import time\ntime.sleep(0.1)\nt = time.gmtime(0)\ns = time.strftime('%Y', t)",
        "from datetime import UTC, datetime\ns = datetime.fromtimestamp(0, UTC)",
        "import trio\nnow = trio.current_time()",
        "def f(clock):\n    return clock.time_ns()",  # not the time module
    ],
)
def test_the_scan_lets_durations_and_formatting_pass(source: str) -> None:
    assert clock_reads(source) == []


def test_only_the_clock_module_reads_the_wall_clock() -> None:
    modules = sorted(PACKAGE.rglob("*.py"))
    assert CLOCK_MODULE in modules
    reads = {
        str(path.relative_to(PACKAGE.parent)): found
        for path in modules
        if path != CLOCK_MODULE and (found := clock_reads(path.read_text()))
    }
    assert reads == {}, "read the time from an injected ledgerdns.clock.Clock instead"
    assert clock_reads(CLOCK_MODULE.read_text())  # the scan does see the real one


def test_the_clocks_agree_on_units() -> None:
    manual = ManualClock(1_700_000_123_456)
    assert (manual.now_ns(), manual.now_ms(), manual.now_s()) == (
        1_700_000_123_456_000_000, 1_700_000_123_456, 1_700_000_123,
    )  # fmt: skip
    manual.advance_ms(544)
    assert manual.now_s() == 1_700_000_124
    manual.set_ms(5)
    assert manual.now_ms() == 5
    ms = SYSTEM_CLOCK.now_ms()
    assert ms // 1000 <= SYSTEM_CLOCK.now_s() <= ms // 1000 + 1
    assert SYSTEM_CLOCK.now_ns() // 1_000_000 >= ms
