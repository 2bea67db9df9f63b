"""Names: normalizing user input, and the checks on canonical names."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from chain.errors import InvalidUpdate, RejectReason
from chain.names import (
    absolute_name,
    normalize_name,
    normalize_relative_name,
    relative_name,
    validate_absolute_name,
    validate_domain,
    validate_relative_name,
)

TLDS = frozenset({"p2p", "ledger.test"})
LABEL_63 = "a" * 63


def _bad_name(call: Callable[..., object], *args: object) -> str:
    with pytest.raises(InvalidUpdate) as info:
        call(*args)
    assert info.value.reason == RejectReason.BAD_NAME
    return str(info.value)


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("alice.p2p", "alice.p2p"),
        ("Alice.P2P", "alice.p2p"),
        ("alice.p2p.", "alice.p2p"),
        ("Bücher.p2p", "xn--bcher-kva.p2p"),
        ("BÜCHER.p2p", "xn--bcher-kva.p2p"),
        ("xn--bcher-kva.p2p", "xn--bcher-kva.p2p"),
        ("XN--BCHER-KVA.P2P", "xn--bcher-kva.p2p"),
        ("straße.p2p", "xn--strae-oqa.p2p"),  # IDNA 2008: ß is kept, not mapped to ss
        ("例え.p2p", "xn--r8jz45g.p2p"),
        ("a。b", "a.b"),  # ideographic full stop is a dot under UTS #46
        ("ﬀ.p2p", "ff.p2p"),  # compatibility mapping
        ("123.p2p", "123.p2p"),
        ("a-b.p2p", "a-b.p2p"),
        (LABEL_63 + ".p2p", LABEL_63 + ".p2p"),
        (".".join([LABEL_63] * 3 + ["a" * 61]), ".".join([LABEL_63] * 3 + ["a" * 61])),
    ],
)
def test_normalize_name(text: str, canonical: str) -> None:
    assert normalize_name(text) == canonical
    assert normalize_name(canonical) == canonical


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "empty"),
        (".", "empty"),
        ("a..p2p", "empty label"),
        ("alice.p2p..", "empty label"),
        (".alice.p2p", "empty label"),
        ("-alice.p2p", "hyphen"),
        ("alice-.p2p", "hyphen"),
        ("ab--c.p2p", "hyphens"),
        ("xn--.p2p", "A-label"),
        ("xn--zz.p2p", "A-label"),
        ("xn---bbk.p2p", "canonical"),
        ("a_b.p2p", "U+005F"),
        ("a b.p2p", "U+0020"),
        ("*.p2p", "U+002A"),
        ("a\u200db.p2p", "IDNA"),  # a joiner outside its allowed context
        ("a" * 64 + ".p2p", "too long"),
        (".".join([LABEL_63] * 4), "253"),
        ("x" * 2000, "253"),
    ],
)
def test_normalize_name_rejects(text: str, fragment: str) -> None:
    message = _bad_name(normalize_name, text)
    assert fragment in message


def test_normalize_name_rejects_non_strings() -> None:
    _bad_name(normalize_name, b"alice.p2p")


def test_messages_name_the_name_and_stay_short() -> None:
    assert "'a..p2p'" in _bad_name(normalize_name, "a..p2p")
    assert len(_bad_name(normalize_name, "x" * 2000)) < 200


@pytest.mark.parametrize(
    "name",
    ["alice.p2p", "xn--bcher-kva.p2p", "a.p2p", "bob.ledger.test", "ledger.p2p", LABEL_63 + ".p2p"],
)
def test_validate_domain_accepts(name: str) -> None:
    assert validate_domain(name, TLDS) == name


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("Alice.p2p", "canonical form is 'alice.p2p'"),
        ("alice.p2p.", "canonical form is 'alice.p2p'"),
        ("Bücher.p2p", "canonical form is 'xn--bcher-kva.p2p'"),
        ("p2p", "top-level domain"),
        ("ledger.test", "top-level domain"),
        ("www.alice.p2p", "directly under a TLD"),
        ("alice.com", "directly under a TLD"),
        ("test", "directly under a TLD"),
        ("a_b.p2p", "U+005F"),
        ("", "empty"),
    ],
)
def test_validate_domain_rejects(name: str, fragment: str) -> None:
    assert fragment in _bad_name(validate_domain, name, TLDS)


@pytest.mark.parametrize(
    "name",
    ["@", "www", "a.b", "_sip._tcp", "_dmarc", "sel1._domainkey", "*", "*.sub", "*._tcp", "_",
     "xn--bcher-kva", "a-b", "1", LABEL_63],
)  # fmt: skip
def test_validate_relative_name_accepts(name: str) -> None:
    assert validate_relative_name(name) == name


@pytest.mark.parametrize(
    "name",
    ["", "WWW", "www.", ".www", "a..b", "@.www", "www.@", "a.*", "*a", "**", "-a", "a-", "ab--c",
     "xn--zz", "a b", "a/b", "bücher", "a" * 64, ".".join([LABEL_63] * 4), "\n"],
)  # fmt: skip
def test_validate_relative_name_rejects(name: str) -> None:
    _bad_name(validate_relative_name, name)


def test_validate_relative_name_rejects_non_strings() -> None:
    _bad_name(validate_relative_name, 7)


@pytest.mark.parametrize(
    ("text", "canonical"),
    [("@", "@"), ("WWW", "www"), ("_SIP._TCP", "_sip._tcp"), ("*.Sub", "*.sub"),
     ("Bücher.shop", "xn--bcher-kva.shop"), ("a。b", "a.b")],
)  # fmt: skip
def test_normalize_relative_name(text: str, canonical: str) -> None:
    assert normalize_relative_name(text) == canonical


@pytest.mark.parametrize("text", ["www.", "a..b", "a.*", "_bü", "a b", ""])
def test_normalize_relative_name_rejects(text: str) -> None:
    _bad_name(normalize_relative_name, text)


@pytest.mark.parametrize(
    ("name", "underscore"),
    [("mail.example.com", False), ("a", False), ("_acme-challenge.x.p2p", True)],
)
def test_validate_absolute_name_accepts(name: str, underscore: bool) -> None:
    assert validate_absolute_name(name, allow_underscore=underscore) == name


@pytest.mark.parametrize(
    "name", ["", "_acme.x.p2p", "Mail.example.com", "mail.example.com.", "*.x.p2p", "a..b"]
)
def test_validate_absolute_name_rejects(name: str) -> None:
    _bad_name(validate_absolute_name, name)


@pytest.mark.parametrize(
    ("relative", "absolute"),
    [("@", "alice.p2p"), ("www", "www.alice.p2p"), ("_sip._tcp", "_sip._tcp.alice.p2p"),
     ("*.sub", "*.sub.alice.p2p")],
)  # fmt: skip
def test_absolute_and_relative_names_are_inverse(relative: str, absolute: str) -> None:
    assert absolute_name(relative, "alice.p2p") == absolute
    assert relative_name(absolute, "alice.p2p") == relative
    assert relative_name(absolute + ".", "alice.p2p") == relative


def test_absolute_name_is_at_most_253_bytes() -> None:
    domain = "a" * 60 + ".p2p"  # 64 bytes
    fits = ".".join([LABEL_63, LABEL_63, "a" * 60])  # 188 bytes, +1 +64 = 253
    assert len(absolute_name(fits, domain)) == 253
    assert "253" in _bad_name(absolute_name, fits + "a", domain)
    _bad_name(absolute_name, "WWW", "alice.p2p")


@pytest.mark.parametrize(
    "absolute",
    ["bob.p2p", "www.bob.p2p", "xalice.p2p", ".alice.p2p", "@.alice.p2p", "WWW.alice.p2p", "p2p"],
)
def test_relative_name_rejects_names_outside_the_domain(absolute: str) -> None:
    _bad_name(relative_name, absolute, "alice.p2p")


@pytest.mark.parametrize(
    "name",
    [
        "a.p2p", "1.p2p", "a-b.p2p", "a.b.c.p2p", LABEL_63 + ".p2p", "a" * 64 + ".p2p",
        "a--b.p2p", "ab--c.p2p", "xn--bcher-kva.p2p", "xn--bcher-kva-.p2p", "xn--a.p2p",
        "-a.p2p", "a-.p2p", "A.p2p", "a..p2p", ".a.p2p", "a.p2p.", "a_b.p2p", "", "é.p2p",
    ],
)  # fmt: skip
def test_fast_canonical_check_agrees_with_the_label_rules(name: str) -> None:
    from chain.names import _is_canonical, _label_problem

    by_labels = name.isascii() and all(_label_problem(label) is None for label in name.split("."))
    assert _is_canonical(name) == by_labels
