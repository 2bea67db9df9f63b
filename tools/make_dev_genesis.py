"""Regenerate the shipped genesis files from the well-known dev keys.

genesis/devnet.json and genesis/localnet-4.json register names directly (no
commit-reveal, no stamp, no per-block limits: what tests and benchmarks use);
genesis/example-public.json shows the naming rules of a public network
(commit-reveal, the real stamp, a one-year name lifetime; docs/naming.md).

The validator keys of these files are PUBLIC (see tools/devchain.py: derived from
fixed strings) so that tests and the local cluster launcher can sign with them.
Never use these files for a network that matters: make a genesis with your own
keys (`chain.genesis.make_single_validator_genesis`, or edit a copy).

    python tools/make_dev_genesis.py [--check]
"""

from __future__ import annotations

if not __package__:  # run as `python tools/X.py`: make `tools` importable (tools/_bootstrap.py)
    import _bootstrap  # noqa: F401

import argparse
import dataclasses
import sys
from pathlib import Path

from chain.genesis import Genesis, InitialDomain, make_single_validator_genesis
from chain.params import PUBLIC_NAME_LIFETIME_S, PUBLIC_NAMING
from chain.quorum import ValidatorSet
from chain.records import Record, canonical_record_set
from tools.devchain import dev_key

ROOT = Path(__file__).resolve().parents[1]
GENESIS_TIME_MS = 1_796_000_000_000  # 2026-11-30T00:00:00Z, a fixed point for reproducible files


def devnet() -> Genesis:
    return make_single_validator_genesis(
        dev_key("validator", 0).public_key, genesis_time_ms=GENESIS_TIME_MS, chain_id="ledgerdns-devnet"
    )


def localnet(n: int = 4) -> Genesis:
    base = make_single_validator_genesis(
        dev_key("validator", 0).public_key, genesis_time_ms=GENESIS_TIME_MS, chain_id=f"ledgerdns-localnet-{n}"
    )
    keys = tuple(dev_key("validator", i).public_key for i in range(n))
    records = canonical_record_set([
        Record.from_text(line, origin="ledgerdns.p2p")
        for line in ("@ 300 TXT \"ledgerdns local network\"", "ns1 300 A 127.0.0.1")
    ])
    return dataclasses.replace(
        base,
        params=dataclasses.replace(base.params, validators=ValidatorSet(keys)),
        validator_names=tuple(f"validator-{i}" for i in range(n)),
        domains=(InitialDomain(domain="ledgerdns.p2p", owner=dev_key("owner", 0).public_key, records=records),),
    )


def example_public() -> Genesis:
    """A public network's rules: naming (chain.params.PUBLIC_NAMING, docs/naming.md), a nameserver set."""
    base = localnet(4)
    params = dataclasses.replace(
        base.params,
        chain_id="ledgerdns-example",
        name_lifetime_s=PUBLIC_NAME_LIFETIME_S,
        consensus=dataclasses.replace(base.params.consensus, heartbeat_ms=60_000),
        naming=PUBLIC_NAMING,
        # The public nameserver set every node answers (docs/dns.md); the names are examples.
        nameservers=("ns1.example.net", "ns2.example.org"),
    )
    return dataclasses.replace(base, params=params)


FILES = {"devnet.json": devnet, "localnet-4.json": localnet, "example-public.json": example_public}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="fail if the files differ instead of writing them")
    args = parser.parse_args()
    stale = []
    for name, make in FILES.items():
        path = ROOT / "genesis" / name
        text = make().to_json()
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(name)
        else:
            path.write_text(text)
            print(f"wrote {path.relative_to(ROOT)}")
    if stale:
        print(f"out of date: {', '.join(stale)}; run python tools/make_dev_genesis.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
