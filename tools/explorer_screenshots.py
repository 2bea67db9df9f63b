"""Save SVG screenshots of the explorer's main screens (``docs/explorer-*.svg``).

    python tools/explorer_screenshots.py [--out docs] [--validators 3]

Starts a throw-away local network (`tools.localnet.Cluster`, loopback only) in a
temporary directory, registers a few names with the wallet CLI and updates one,
then drives the app headless through the dashboard, a block, a transaction, a
domain history and the peers view, saving one SVG each. `capture` is also what
the integration test calls against its own node.
"""

from __future__ import annotations

if not __package__:  # run as `python tools/X.py`: make `tools` importable (tools/_bootstrap.py)
    import _bootstrap  # noqa: F401

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from textual.pilot import Pilot

from chain.genesis import Genesis
from ledgerdns.api.client import RpcClient
from ledgerdns.explorer.app import ExplorerApp
from ledgerdns.explorer.data import NodeData
from tools.localnet import Cluster

ROOT = Path(__file__).resolve().parents[1]
SIZE = (120, 36)
SCREENS = ("dashboard", "block", "tx", "domain", "peers")


async def settle(pilot: Pilot[None], done: Callable[[], bool], timeout: float = 10.0) -> None:
    """Let the app run until `done()` holds; TimeoutError after `timeout` s (no half-loaded shots)."""
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{type(pilot.app.screen).__name__} not ready within {timeout:g} s")
        await pilot.pause(0.1)
    await pilot.pause(0.2)


async def capture(data: NodeData, out_dir: Path, domain: str, height: int) -> list[Path]:
    """Drive the app through its main screens and save ``explorer-<screen>.svg`` in `out_dir`.

    Args:
        data: the model of a running node.
        out_dir: where the SVGs go.
        domain: the domain whose history to show.
        height: the block to open (its first transaction is opened too).
    """
    app = ExplorerApp(data)
    out_dir.mkdir(parents=True, exist_ok=True)
    saved: list[Path] = []

    def save(name: str) -> None:
        app.save_screenshot(f"explorer-{name}.svg", str(out_dir))
        saved.append(out_dir / f"explorer-{name}.svg")

    def showing(kind: str, attr: str) -> Callable[[], bool]:
        return lambda: type(app.screen).__name__ == kind and getattr(app.screen, attr) is not None

    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, lambda: app.snapshot is not None and app.snapshot.height >= height)
        save("dashboard")
        await app.open_block(height)
        await settle(pilot, showing("BlockScreen", "block"))
        save("block")
        await pilot.press("enter")
        await settle(pilot, showing("TxScreen", "view"))
        save("tx")
        await pilot.press("slash")
        await pilot.press(*domain, "enter")
        await settle(pilot, showing("DomainScreen", "view"))
        save("domain")
        await pilot.press("d", "p")
        await settle(pilot, lambda: type(app.screen).__name__ == "PeersScreen")
        await pilot.pause(data.poll_s * 2)
        save("peers")
    return saved


def _wallet(node_dir: Path, wallet: Path, *args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "ledgerdns", "wallet", "--wallet-dir", str(wallet), "--node",
         str(node_dir), "--json", *args],
        cwd=ROOT, check=True, capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT), "LEDGERDNS_PASSPHRASE": "screenshots"},
    )  # fmt: skip


def _populate(node_dir: Path, wallet: Path) -> None:
    _wallet(node_dir, wallet, "new")
    _wallet(node_dir, wallet, "register", "alice.p2p", "--record", "@ 300 A 10.0.0.1",
            "--record", "www 300 A 10.0.0.2")  # fmt: skip
    _wallet(node_dir, wallet, "register", "bob.p2p", "--record", "@ 300 A 10.0.0.3")
    _wallet(node_dir, wallet, "set", "alice.p2p", "--record", "@ 300 A 10.0.0.9",
            "--record", "www 300 A 10.0.0.2", "--record", '@ 300 TXT "hello"')  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    """Start a local network, populate it, save the screenshots."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs"), help="directory for the SVGs")
    parser.add_argument("--validators", type=int, default=3, help="validators in the network")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="exp-shots-") as tmp:
        with Cluster(Path(tmp), validators=args.validators, followers=0) as cluster:
            cluster.start()
            if args.validators > 1:
                cluster.wait_peers(1, timeout=30)
            node_dir = cluster.nodes[0].data_dir
            _populate(node_dir, Path(tmp) / "wallet")
            genesis = Genesis.from_json((Path(tmp) / "genesis.json").read_text(encoding="utf-8"))

            def connect() -> RpcClient:
                return RpcClient.for_node(node_dir, timeout=3)

            data = NodeData(
                connect, where=str(node_dir), genesis=genesis, poll_s=0.5,
                now_ms=lambda: time.time_ns() // 1_000_000,
            )  # fmt: skip
            for path in asyncio.run(capture(data, Path(args.out), "alice.p2p", 3)):
                print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
