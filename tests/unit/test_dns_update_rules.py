"""RFC 2136 rules on a ledger domain, without sockets: prerequisites, prescan, the update."""

from __future__ import annotations

import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.update
import pytest

from chain.errors import InvalidUpdate
from chain.records import Record, canonical_record_set
from ledgerdns.dns.update_rules import (
    UpdateRR,
    ZoneView,
    apply_updates,
    check_prerequisites,
    owner_of,
    prescan,
    read_sections,
)

DOMAIN = "alice.p2p"
APEX = dns.name.from_text(DOMAIN)
IN, ANY, NONE, CH = (
    dns.rdataclass.IN, dns.rdataclass.ANY, dns.rdataclass.NONE, dns.rdataclass.CH,
)  # fmt: skip
SOA_RDATA = dns.rdata.from_text(IN, "SOA", "ns. hostmaster.alice.p2p. 1 2 3 4 5").to_digestable()
NS_RDATA = dns.rdata.from_text(IN, "NS", "ns1.example.net.").to_digestable()


def recs(*lines: str) -> tuple[Record, ...]:
    return canonical_record_set(Record.from_text(line, origin=DOMAIN) for line in lines)


def texts(records: tuple[Record, ...]) -> list[str]:
    return sorted(r.to_text(DOMAIN) for r in records)


def rr(name: str, rdclass: int, rdtype: str, ttl: int = 0, rdata: str | None = None) -> UpdateRR:
    parsed = (
        None
        if rdata is None
        else dns.rdata.from_text(IN, rdtype, rdata, origin=APEX, relativize=False)
    )
    return UpdateRR(
        name=dns.name.from_text(name, APEX),
        rdclass=rdclass,
        rdtype=dns.rdatatype.from_text(rdtype),
        ttl=ttl,
        rdata=parsed,
    )


CURRENT = recs("@ A 192.0.2.1", "www A 192.0.2.10", "www TXT web", "alias CNAME www")
ZONE = ZoneView.of(APEX, CURRENT, soa=SOA_RDATA, ns=[NS_RDATA])


def test_owner_names_are_relative_and_lower_case() -> None:
    assert owner_of(dns.name.from_text("WWW.Alice.P2P."), APEX) == "www"
    assert owner_of(APEX, APEX) == "@"
    assert owner_of(dns.name.from_text("bob.p2p."), APEX) is None


@pytest.mark.parametrize(
    ("prerequisite", "rcode"),
    [
        (rr("www", ANY, "A"), dns.rcode.NOERROR),
        (rr("www", ANY, "AAAA"), dns.rcode.NXRRSET),
        (rr("@", ANY, "NS"), dns.rcode.NOERROR),  # synthesized
        (rr("www", ANY, "ANY"), dns.rcode.NOERROR),
        (rr("no", ANY, "ANY"), dns.rcode.NXDOMAIN),
        (rr("www", NONE, "A"), dns.rcode.YXRRSET),
        (rr("www", NONE, "ANY"), dns.rcode.YXDOMAIN),
        (rr("no", NONE, "ANY"), dns.rcode.NOERROR),
        (rr("www", IN, "A", rdata="192.0.2.10"), dns.rcode.NOERROR),
        (rr("www", IN, "A", rdata="192.0.2.99"), dns.rcode.NXRRSET),
        (rr("@", IN, "NS", rdata="ns1.example.net."), dns.rcode.NOERROR),
        (rr("www", ANY, "A", ttl=1), dns.rcode.FORMERR),
        (rr("www", NONE, "A", rdata="192.0.2.10"), dns.rcode.FORMERR),
        (rr("www", CH, "A", rdata="192.0.2.10"), dns.rcode.FORMERR),
        (rr("x.bob.p2p.", ANY, "A"), dns.rcode.NOTZONE),
    ],
)
def test_prerequisites(prerequisite: UpdateRR, rcode: int) -> None:
    assert check_prerequisites([prerequisite], ZONE, IN) == rcode


def test_owner_ns_at_the_apex_replaces_the_synthesized_one() -> None:
    zone = ZoneView.of(APEX, recs("@ NS ns.elsewhere.example."), soa=SOA_RDATA, ns=[NS_RDATA])
    assert check_prerequisites([rr("@", IN, "NS", rdata="ns1.example.net.")], zone, IN) == (
        dns.rcode.NXRRSET
    )


@pytest.mark.parametrize(
    ("update", "rcode"),
    [
        (rr("www", IN, "A", 300, "192.0.2.1"), dns.rcode.NOERROR),
        (rr("www", IN, "ANY", 300, "\\# 0"), dns.rcode.FORMERR),
        (rr("www", IN, "AXFR", 300, "\\# 0"), dns.rcode.FORMERR),
        (rr("www", ANY, "A"), dns.rcode.NOERROR),
        (rr("www", ANY, "A", ttl=5), dns.rcode.FORMERR),
        (rr("www", ANY, "MAILA"), dns.rcode.FORMERR),
        (rr("www", NONE, "A", rdata="192.0.2.1"), dns.rcode.NOERROR),
        (rr("www", NONE, "A", 5, "192.0.2.1"), dns.rcode.FORMERR),
        (rr("www", NONE, "ANY", rdata="\\# 0"), dns.rcode.FORMERR),
        (rr("www", CH, "A", 300, "192.0.2.1"), dns.rcode.FORMERR),
        (rr("a.bob.p2p.", IN, "A", 300, "192.0.2.1"), dns.rcode.NOTZONE),
    ],
)
def test_prescan(update: UpdateRR, rcode: int) -> None:
    assert prescan([update], APEX, IN) == rcode


@pytest.mark.parametrize(
    ("updates", "expected"),
    [
        ([rr("new", IN, "A", 60, "192.0.2.5")], [*texts(CURRENT), "new 60 IN A 192.0.2.5"]),
        (  # the RRset takes the new TTL (one TTL per RRset)
            [rr("www", IN, "A", 60, "192.0.2.11")],
            ["@ 300 IN A 192.0.2.1", "alias 300 IN CNAME www.alice.p2p.",
             "www 60 IN A 192.0.2.10", "www 60 IN A 192.0.2.11", 'www 300 IN TXT "web"'],
        ),
        ([rr("alias", IN, "A", 300, "192.0.2.5")], texts(CURRENT)),  # beside a CNAME
        ([rr("www", IN, "CNAME", 300, "alias")], texts(CURRENT)),  # beside other data
        ([rr("@", IN, "CNAME", 300, "www")], texts(CURRENT)),  # beside the SOA
        (
            [rr("alias", IN, "CNAME", 60, "@")],
            [*[t for t in texts(CURRENT) if not t.startswith("alias")],
             "alias 60 IN CNAME alice.p2p."],
        ),
        ([rr("@", IN, "SOA", 300, "a. b. 9 1 1 1 1")], texts(CURRENT)),
        ([rr("@", NONE, "SOA", 0, "a. b. 9 1 1 1 1")], texts(CURRENT)),
        ([rr("@", ANY, "SOA")], texts(CURRENT)),
        ([rr("www", ANY, "ANY")], ["@ 300 IN A 192.0.2.1", "alias 300 IN CNAME www.alice.p2p."]),
        ([rr("@", ANY, "ANY")], [t for t in texts(CURRENT) if not t.startswith("@")]),
        ([rr("www", NONE, "A", 0, "192.0.2.10")], [t for t in texts(CURRENT) if " A 192.0.2.10" not in t]),
        (  # in order: delete the RRset, then add
            [rr("www", IN, "A", 300, "192.0.2.20"), rr("www", ANY, "A"),
             rr("www", IN, "A", 300, "192.0.2.21")],
            [*[t for t in texts(CURRENT) if " A 192.0.2.10" not in t], "www 300 IN A 192.0.2.21"],
        ),
        ([rr("www", NONE, "PTR", 0, "x.example.")], texts(CURRENT)),
    ],
)  # fmt: skip
def test_apply_updates(updates: list[UpdateRR], expected: list[str]) -> None:
    assert texts(apply_updates(updates, CURRENT, APEX).records) == sorted(expected)


def test_apex_ns_set_by_the_owner_keeps_its_last_rr() -> None:
    current = recs("@ NS ns1.elsewhere.example.", "@ NS ns2.elsewhere.example.")
    one = apply_updates([rr("@", NONE, "NS", 0, "ns1.elsewhere.example.")], current, APEX)
    assert texts(one.records) == ["@ 300 IN NS ns2.elsewhere.example."]
    last = apply_updates([rr("@", NONE, "NS", 0, "ns2.elsewhere.example.")], one.records, APEX)
    assert last.records == one.records and "last apex NS" in last.ignored[0]
    assert apply_updates([rr("@", ANY, "ANY")], current, APEX).records == current
    assert apply_updates([rr("@", ANY, "NS")], current, APEX).records == current


@pytest.mark.parametrize(
    "update",
    [rr("x", IN, "HINFO", 300, "a b"), rr("-x-", IN, "A", 300, "192.0.2.1")],
    ids=["unsupported-type", "bad-owner"],
)
def test_records_the_ledger_cannot_hold_are_refused(update: UpdateRR) -> None:
    with pytest.raises(InvalidUpdate):
        apply_updates([update], CURRENT, APEX)


def test_read_sections_keeps_wire_order_and_ttls() -> None:
    update = dns.update.UpdateMessage(DOMAIN)
    update.present("www", "A")
    update.add("www", 300, "A", "192.0.2.1")
    update.delete("www", "A")
    update.add("www", 60, "A", "192.0.2.2")
    wire = update.to_wire()
    message = dns.message.from_wire(wire, one_rr_per_rrset=True)
    assert isinstance(message, dns.update.UpdateMessage)
    prerequisites, updates = read_sections(wire, message.prerequisite, message.update)
    assert [(p.rdclass, p.ttl, p.rdata) for p in prerequisites] == [(ANY, 0, None)]
    assert [(u.rdclass, u.ttl) for u in updates] == [(IN, 300), (ANY, 0), (IN, 60)]
