"""`ledgerdns explorer` driven headless (textual's pilot) against a real devnet node.

One node per module: the names are registered once, the screens are checked,
then the node is stopped and restarted under the open app (that test runs last).
What is "on screen" is read back from the app's own SVG export, line by line.
"""

from __future__ import annotations

import argparse
import asyncio
import html
import json
import re
import signal
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from textual.app import App
from textual.pilot import Pilot

from chain.genesis import Genesis, make_single_validator_genesis
from ledgerdns.api.client import RpcClient
from ledgerdns.cli import main as cli_main
from ledgerdns.explorer.app import ExplorerApp
from ledgerdns.explorer.blocks import BlockScreen, BlocksScreen
from ledgerdns.explorer.cli import make_data
from ledgerdns.explorer.data import Disconnected, NodeData, check_proof
from ledgerdns.explorer.domain import DomainScreen, proof_text
from ledgerdns.explorer.tx import TxScreen
from tests.integration.test_node import Running, _register
from tools.devchain import dev_key
from tools.explorer_screenshots import SCREENS, capture

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SIZE = (120, 40)
_TEXT = re.compile(
    r'<text[^>]*?x="([\d.]+)"[^>]*?textLength="([\d.]+)"[^>]*?clip-path="url\(#[^)]*-line-(\d+)\)"'
    r"[^>]*>(.*?)</text>",
    re.S,
)


@dataclass
class Devnet:
    data_dir: Path
    node: Running
    txids: dict[str, str]  # "alice0", "bob0", "alice1" -> txid


@pytest.fixture(scope="module")
def devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Devnet]:
    """A devnet with alice.p2p (registered, then updated) and bob.p2p; heights 1-3."""
    base = tmp_path_factory.mktemp("explorer")
    data, wallet = base / "devnet", base / "wallet"
    net = Devnet(data, Running(data), {})
    try:
        assert _register(data, wallet, "new").returncode == 0
        steps = [
            ("alice0", ["register", "alice.p2p", "--record", "@ 300 A 10.0.0.1",
                        "--record", "www 300 A 10.0.0.2"]),
            ("bob0", ["register", "bob.p2p", "--record", "@ 300 A 10.0.0.3"]),
            ("alice1", ["set", "alice.p2p", "--record", "@ 300 A 10.0.0.9",
                        "--record", "www 300 A 10.0.0.2"]),
        ]  # fmt: skip
        for key, args in steps:
            done = _register(data, wallet, *args)
            assert done.returncode == 0, done.stderr
            net.txids[key] = json.loads(done.stdout)["txid"]
        yield net
    finally:
        net.node.close()


def screen_text(app: App[None]) -> str:
    """What the terminal shows, as text lines (from the SVG the app exports)."""
    spans = [(float(x), float(w), int(n), html.unescape(t).replace("\xa0", " "))
             for x, w, n, t in _TEXT.findall(app.export_screenshot())]  # fmt: skip
    cell = min(w / len(t) for _, w, _, t in spans if t)  # one terminal column, in SVG units
    lines: dict[int, str] = {}
    for x, _, n, text in sorted(spans):
        col = round(x / cell)
        lines[n] = lines.get(n, "").ljust(col) + text
    return "\n".join(line for _, line in sorted(lines.items()))


async def until(
    pilot: Pilot[None], check: Callable[[], bool], what: str, timeout: float = 10
) -> None:
    """Let the app run until `check()` holds; fail with the screen after `timeout` s."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(
                f"{what}: not within {timeout:g} s; screen:\n{screen_text(pilot.app)}"
            )
        await pilot.pause(0.05)


def on_screen(app: ExplorerApp, *texts: str) -> Callable[[], bool]:
    return lambda: all(t in screen_text(app) for t in texts)


def model(data_dir: Path) -> NodeData:
    args = argparse.Namespace(
        node=str(data_dir), rpc=None, token_file=None, genesis=None, interval=0.2,
        max_staleness=None,
    )
    return make_data(args)


def test_dashboard_block_tx_and_domain_history(devnet: Devnet) -> None:
    async def drive() -> None:
        app = ExplorerApp(model(devnet.data_dir))
        async with app.run_test(size=SIZE) as pilot:
            await until(
                pilot, on_screen(app, "● connected", "finalized height  3", "validator-0  online"),
                "dashboard",
            )  # fmt: skip

            await pilot.press("b")
            await until(pilot, lambda: isinstance(app.screen, BlocksScreen), "blocks list")
            await until(pilot, on_screen(app, "Blocks, latest"), "blocks loaded")
            await pilot.press("enter")  # the cursor starts on the newest block: height 3
            await until(pilot, lambda: isinstance(app.screen, BlockScreen) and app.screen.block is not None,
                        "block 3")  # fmt: skip
            text = screen_text(app)
            assert re.search(r"height\s+3\b", text) and "signers          validator-0" in text
            assert "alice.p2p  1    update" in text

            await pilot.press("enter")
            await until(pilot, lambda: isinstance(app.screen, TxScreen) and app.screen.view is not None,
                        "tx")  # fmt: skip
            text = screen_text(app)
            assert devnet.txids["alice1"] in text
            assert re.search(r"domain\s+alice\.p2p", text) and re.search(r"seq\s+1\b", text)
            assert devnet.txids["alice0"] in text  # prev: the link to the registration
            assert "- @ 300 IN A 10.0.0.1" in text and "+ @ 300 IN A 10.0.0.9" in text
            assert "  www 300 IN A 10.0.0.2" in text  # unchanged

            await pilot.press("left_square_bracket")  # follow the link to the previous tx
            await until(
                pilot, on_screen(app, devnet.txids["alice0"], "register", "(first step)"), "prev tx"
            )

            await pilot.press("slash", *"alice.p2p", "enter")
            await until(pilot, lambda: isinstance(app.screen, DomainScreen) and app.screen.view is not None,
                        "domain")  # fmt: skip
            text = screen_text(app)
            assert "proof: verified" in text and "NOT verified" not in text
            assert re.search(
                r"0\s+1\s+register .*@ 300 IN A 10\.0\.0\.1; www 300 IN A 10\.0\.0\.2", text
            )
            assert re.search(
                r"1\s+3\s+update .*@ 300 IN A 10\.0\.0\.9; www 300 IN A 10\.0\.0\.2", text
            )

            await pilot.press("d", "p")
            await until(pilot, on_screen(app, "Peers: 0 connected"), "peers view")
            await pilot.press("q")

    asyncio.run(drive())


def test_screenshots_of_the_main_screens(devnet: Devnet, tmp_path: Path) -> None:
    saved = asyncio.run(capture(model(devnet.data_dir), tmp_path, "bob.p2p", 3))
    assert [p.name for p in saved] == [f"explorer-{s}.svg" for s in SCREENS]
    assert all(p.read_text().startswith("<svg") for p in saved)


def test_cli_errors_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], devnet: Devnet
) -> None:
    assert cli_main(["explorer", "--node", str(tmp_path / "missing")]) == 2
    assert "no node data directory" in capsys.readouterr().err
    token = tmp_path / "wrong.token"
    token.write_text("00" * 32)
    token.chmod(0o600)
    url = devnet.node.ready["rpc"]
    assert cli_main(["explorer", "--rpc", url, "--token-file", str(token)]) == 2
    err = capsys.readouterr().err
    assert "refused the RPC token" in err and "Traceback" not in err and err.count("\n") == 1


def test_a_proof_against_another_genesis_is_not_verified(devnet: Devnet) -> None:
    other = make_single_validator_genesis(
        dev_key("validator", 9).public_key, genesis_time_ms=0, chain_id="ledgerdns-devnet"
    )
    with RpcClient.for_node(devnet.data_dir) as client:
        doc = client.proof("alice.p2p")
    trusted = Genesis.from_json((devnet.data_dir / "genesis.json").read_text())
    assert check_proof(doc, trusted, "alice.p2p").verified
    verdict = check_proof(doc, other, "alice.p2p")
    assert not verdict.verified and "bad-validators" in verdict.detail
    assert "NOT verified" in proof_text(verdict).plain


def test_a_silent_node_shows_disconnected() -> None:
    with socket.socket() as silent:  # accepts connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        data = NodeData(
            lambda: RpcClient(url, "00" * 32, timeout=0.3), where=url, genesis=None,
            now_ms=lambda: 0,
        )  # fmt: skip
        with pytest.raises(Disconnected, match="did not answer"):
            asyncio.run(data.snapshot())
        data.close()
    assert not data.link.connected and "did not answer" in data.link.message


def test_a_stopped_node_shows_disconnected_and_a_restarted_one_reconnects(devnet: Devnet) -> None:
    async def drive() -> None:
        app = ExplorerApp(model(devnet.data_dir))
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, on_screen(app, "● connected", "finalized height  3"), "dashboard")
            await asyncio.to_thread(devnet.node.stop, signal.SIGTERM)
            await until(pilot, on_screen(app, "DISCONNECTED"), "disconnected", timeout=10)
            assert "finalized height  3" in screen_text(app)  # the last figures stay
            devnet.node = await asyncio.to_thread(Running, devnet.data_dir)  # same dir, new ports
            await until(pilot, on_screen(app, "● connected", "height 3"), "reconnected", timeout=20)
            assert "DISCONNECTED" not in screen_text(app)

    asyncio.run(drive())
