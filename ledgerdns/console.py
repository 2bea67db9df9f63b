"""The consoles the command line prints through, and its one-object JSON output.

Colour and styles only reach a terminal: rich already writes plain text to a
pipe or a file, and ``NO_COLOR`` (https://no-color.org) here turns off every
escape sequence, bold included, even on a terminal or with ``FORCE_COLOR``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

from rich.console import Console

ENV_NO_COLOR = "NO_COLOR"


def no_color() -> bool:
    """Whether the user asked for no colour (``NO_COLOR`` set and not empty)."""
    return os.environ.get(ENV_NO_COLOR, "") != ""


def make_console(*, stderr: bool = False) -> Console:
    """A console on stdout (or stderr) that styles its output only on a terminal."""
    if no_color():
        return Console(stderr=stderr, color_system=None, no_color=True)
    return Console(stderr=stderr)


def emit_json(out: Console, data: Mapping[str, Any]) -> None:
    """Print `data` as one line of JSON, bypassing rich (no wrapping, no markup)."""
    out.file.write(json.dumps(data, sort_keys=True) + "\n")
    out.file.flush()
