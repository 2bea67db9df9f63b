"""The node's default ports and the --metrics option, as `ledgerdns node --help` shows them."""

from __future__ import annotations

from pathlib import Path

import pytest

from ledgerdns.cli import main
from ledgerdns.node.config import DEFAULT_DNS, NodeConfig, parse_host_port

MDNS = 5353  # avahi and every mDNS responder hold it


def test_the_default_dns_port_is_not_mdns(capsys: pytest.CaptureFixture[str]) -> None:
    host, port = parse_host_port(DEFAULT_DNS, "--dns")
    assert (host, port) == ("127.0.0.1", 8553)
    assert port != MDNS
    assert NodeConfig(data_dir=Path("unused")).dns == (host, port)
    with pytest.raises(SystemExit):
        main(["node", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "default 127.0.0.1:8553" in text and "5353" not in text
    assert "--metrics HOST:PORT" in text and "/readyz" in text


@pytest.mark.parametrize("bad", ["9100", "localhost:x", ":9100"])
def test_a_bad_metrics_address_is_a_usage_error(
    bad: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["node", "--data-dir", str(tmp_path), "--metrics", bad]) == 2
    err = capsys.readouterr().err
    assert "--metrics" in err and "Traceback" not in err
