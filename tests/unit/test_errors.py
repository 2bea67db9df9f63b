"""One exception root: every error ledgerdns raises on purpose is a `LedgerError`, and the
command line turns any of them into one line or one JSON object and an exit code, in one place."""

from __future__ import annotations

import io
import json

import pytest
from rich.console import Console

from chain.errors import ConfigError, InvalidUpdate, LedgerError, NetworkError, RejectReason
from ledgerdns.api.client import NodeNotStarted, NodeUnreachable, RpcError
from ledgerdns.cli import report_error
from ledgerdns.explorer.data import Disconnected
from ledgerdns.p2p.errors import P2PError
from ledgerdns.rpc.errors import ApiError
from ledgerdns.status import StatusFailure
from ledgerdns.wallet.errors import BadInput, NodeError, WrongPassphrase


@pytest.mark.parametrize(
    "error",
    [P2PError("x"), NodeUnreachable("x"), NodeNotStarted("x"), RpcError(500, "e", "x"),
     Disconnected("x"), ApiError(400, "bad-request", "x"), StatusFailure("x", code="c"),
     WrongPassphrase(), NodeError("x", code="c"), InvalidUpdate(RejectReason.BAD_NAME)],
)  # fmt: skip
def test_every_error_of_ours_has_the_one_root(error: Exception) -> None:
    assert isinstance(error, LedgerError)


def test_network_failures_are_one_family() -> None:
    for error in (P2PError("x"), NodeUnreachable("x"), RpcError(500, "e", "x"), Disconnected("x")):
        assert isinstance(error, NetworkError)


def report(exc: LedgerError | OSError, *, as_json: bool) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = report_error(
        exc, Console(file=out, width=200), Console(file=err, width=200), as_json=as_json
    )
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize(
    ("error", "word", "status"),
    [
        (ConfigError("no such file", key="genesis"), "usage", 2),
        (BadInput("bad record"), "bad-input", 2),
        (InvalidUpdate(RejectReason.NAME_TAKEN, "alice.p2p is taken"), "name-taken", 1),
        (StatusFailure("node is down", code="node-unreachable"), "node-unreachable", 1),
        (NodeUnreachable("nobody answered"), "error", 1),
        (FileNotFoundError(2, "No such file or directory"), "error", 1),
    ],
)
def test_the_cli_maps_any_error_to_one_line_or_one_object_and_an_exit_code(
    error: LedgerError | OSError, word: str, status: int
) -> None:
    code, out, err = report(error, as_json=False)
    assert code == status and out == "" and err.count("\n") == 1 and err.startswith("error: ")
    code, out, err = report(error, as_json=True)
    doc = json.loads(out)
    assert code == status and err == "" and doc == {"ok": False, "error": word, "message": str(error)}
