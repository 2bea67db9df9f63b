"""Domain names: user input to canonical form, and the checks on canonical names.

A canonical name is what `normalize_name` returns: lower-case ASCII, every
label an LDH label (letters, digits, inner hyphens) of 1..63 bytes, IDNs as
IDNA 2008 A-labels (``xn--``), no trailing dot, at most 253 bytes. The ledger
only ever stores canonical names, so two spellings of one name can never be
two registrations.

Record owner names are *relative* to their domain: ``@`` is the apex, and
labels may also carry underscores (``_sip._tcp``) and a leading ``*`` label
(a wildcard).
"""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import NewType

import idna

from chain.errors import InvalidUpdate, RejectReason

DomainName = NewType("DomainName", str)

MAX_NAME_BYTES = 253
MAX_LABEL_BYTES = 63
APEX = "@"
WILDCARD = "*"

# Longest user input we try to normalize: UTS #46 can drop characters (soft
# hyphens), so the limit is generous, but it keeps idna's work bounded.
_MAX_INPUT_CHARS = 1024

_LDH_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_SERVICE_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")
# Dot-separated LDH labels: with no "--" anywhere, exactly the names whose every
# label `_label_problem` accepts (no label can then be IDNA-reserved).
_LDH_NAME = re.compile(rf"{_LDH_LABEL.pattern}(?:\.{_LDH_LABEL.pattern})*")


def _q(value: object) -> str:
    """`value` quoted for a message, shortened if long (names come from outside)."""
    text = repr(value)
    if len(text) <= 66:
        return text
    return repr(value[:58] + "...") if isinstance(value, str) else text[:62] + "..."


def _bad(message: str) -> InvalidUpdate:
    return InvalidUpdate(RejectReason.BAD_NAME, message)


def _label_problem(label: str) -> str | None:
    """Why `label` is not a canonical LDH label, or None if it is one."""
    if not label:
        return "empty label"
    if len(label) > MAX_LABEL_BYTES:
        return f"label {_q(label)} too long ({len(label)} > {MAX_LABEL_BYTES})"
    if _LDH_LABEL.fullmatch(label) is None:
        return (
            f"label {_q(label)} may hold only lower-case letters, digits and hyphens,"
            " and must not start or end with a hyphen"
        )
    if label[2:4] == "--":
        if not label.startswith("xn--"):
            return f"label {_q(label)} has '--' in 3rd and 4th position (reserved for IDNA)"
        try:
            again = idna.encode(idna.decode(label), uts46=True, strict=True).decode("ascii")
        except UnicodeError as exc:  # idna.IDNAError is a UnicodeError
            return f"label {_q(label)} is not a valid IDNA A-label ({exc})"
        if again != label:
            return f"label {_q(label)} is not the canonical A-label (use {_q(again)})"
    return None


def _service_label_problem(label: str) -> str | None:
    """Like `_label_problem`, for labels that may hold underscores (``_sip``)."""
    if "_" not in label:
        return _label_problem(label)
    if len(label) > MAX_LABEL_BYTES:
        return f"label {_q(label)} too long ({len(label)} > {MAX_LABEL_BYTES})"
    if _SERVICE_LABEL.fullmatch(label) is None:
        return (
            f"label {_q(label)} may hold only lower-case letters, digits, hyphens and"
            " underscores, and must not start or end with a hyphen"
        )
    return None


def _to_alabel(raw: str, text: str) -> str:
    """Convert one user-typed label to its canonical A-label."""
    if not raw:
        raise _bad(f"name {_q(text)} has an empty label")
    if raw.isascii() and len(raw) > MAX_LABEL_BYTES:  # said plainly, not as idna's "Label too long"
        raise _bad(f"name {_q(text)}: label too long ({len(raw)} > {MAX_LABEL_BYTES})")
    try:
        label = idna.encode(raw, uts46=True, strict=True).decode("ascii")
    except UnicodeError as exc:
        size = len(b"xn--" + raw.encode("punycode"))
        if size > MAX_LABEL_BYTES:
            raise _bad(f"name {_q(text)}: label {_q(raw)} too long ({size} > {MAX_LABEL_BYTES} "
                       "bytes as an A-label)") from None  # fmt: skip
        raise _bad(f"name {_q(text)}: label {_q(raw)} is not a valid IDNA label ({exc})") from None
    problem = _label_problem(label)
    if problem is not None:
        raise _bad(f"name {_q(text)}: {problem}")
    return label


def _remap(text: object) -> str:
    """Type- and size-check user input and apply the UTS #46 mapping."""
    if not isinstance(text, str):
        raise _bad(f"a name must be a string, not {type(text).__name__}")
    if len(text) > _MAX_INPUT_CHARS:
        raise _bad(f"name {_q(text)} is longer than {MAX_NAME_BYTES} bytes")
    try:
        # Mapping the whole name first turns the other full stops (U+3002...)
        # into "." so that the split below sees the labels the user meant.
        return idna.uts46_remap(text, std3_rules=False)
    except UnicodeError as exc:
        raise _bad(f"name {_q(text)} is not a valid IDNA name ({exc})") from None


def _check_length(name: str, text: str) -> None:
    if len(name) > MAX_NAME_BYTES:
        raise _bad(f"name {_q(text)} is longer than {MAX_NAME_BYTES} bytes")


def _is_canonical(name: object) -> bool:
    """Fast check that `name` is already what `normalize_name` returns.

    Lower-case LDH labels are fixed points of the UTS #46 mapping and of IDNA
    encoding, and `xn--` labels are checked by `_label_problem`, so a name
    whose labels all pass is canonical without running the full mapping.
    """
    if not isinstance(name, str) or not name.isascii() or len(name) > MAX_NAME_BYTES:
        return False
    if "--" not in name and _LDH_NAME.fullmatch(name) is not None:
        return True  # the common case, in one regex match
    return all(_label_problem(label) is None for label in name.split("."))


def normalize_name(text: str) -> str:
    """Turn a name as a user typed it into its canonical form.

    Strips one trailing dot, lower-cases, maps with UTS #46 and converts every
    label to an IDNA 2008 A-label: ``"Bücher.P2P."`` becomes
    ``"xn--bcher-kva.p2p"``.

    Raises:
        InvalidUpdate: `BAD_NAME`, with a message naming the name and the problem.
    """
    mapped = _remap(text)
    mapped = mapped.removesuffix(".")
    if not mapped:
        raise _bad(f"name {_q(text)} is empty")
    name = ".".join(_to_alabel(raw, text) for raw in mapped.split("."))
    _check_length(name, text)
    return name


def normalize_relative_name(text: str) -> str:
    """Turn a record owner name as a user typed it into its canonical relative form.

    Like `normalize_name`, but ``@`` (the apex), a leading ``*`` label and
    labels with underscores (``_sip._tcp``, ASCII only) are allowed, and a
    trailing dot is not (that would be an absolute name).

    Raises:
        InvalidUpdate: `BAD_NAME`.
    """
    mapped = _remap(text)
    if mapped == APEX:
        return APEX
    if mapped.endswith("."):
        raise _bad(f"relative name {_q(text)} must not end with a dot")
    labels: list[str] = []
    for index, raw in enumerate(mapped.split(".")):
        if raw == WILDCARD and index == 0:
            labels.append(raw)
        elif "_" in raw:
            if not raw.isascii():
                raise _bad(f"name {_q(text)}: label {_q(raw)} with '_' must be ASCII")
            labels.append(raw.lower())
        else:
            labels.append(_to_alabel(raw, text))
    return validate_relative_name(".".join(labels))


def validate_domain(name: str, tlds: Collection[str]) -> DomainName:
    """Check that `name` is a canonical, registrable domain under one of `tlds`.

    Args:
        name: the domain, already canonical (exactly what `normalize_name` returns).
        tlds: the canonical TLDs of the network (may have several labels).

    Returns:
        The name, typed as a `DomainName`.

    Raises:
        InvalidUpdate: `BAD_NAME` if it is not canonical or not exactly one label
            directly under a TLD.
    """
    if not _is_canonical(name):
        canonical = normalize_name(name)
        if canonical != name:
            raise _bad(f"domain {_q(name)} is not canonical; its canonical form is {_q(canonical)}")
    if name in tlds:
        raise _bad(f"{_q(name)} is a top-level domain, not a registrable domain")
    _, _, parent = name.partition(".")
    if parent not in tlds:
        known = ", ".join(sorted(tlds)) or "none"
        raise _bad(f"domain {_q(name)} must be one label directly under a TLD ({known})")
    return DomainName(name)


def validate_relative_name(name: str) -> str:
    """Check a canonical relative owner name (``@``, ``www``, ``_sip._tcp``, ``*.sub``).

    Returns:
        `name`, unchanged.

    Raises:
        InvalidUpdate: `BAD_NAME`.
    """
    if not isinstance(name, str):
        raise _bad(f"an owner name must be a string, not {type(name).__name__}")
    if name == APEX:
        return name
    _check_relative_labels(name)
    return name


def _check_relative_labels(name: str) -> None:
    if not name:
        raise _bad("owner name is empty (use '@' for the apex)")
    if len(name) > MAX_NAME_BYTES or not name.isascii():
        raise _bad(f"owner name {_q(name)} must be canonical ASCII of at most 253 bytes")
    if name != name.lower():
        raise _bad(f"owner name {_q(name)} is not canonical; use {_q(name.lower())}")
    for index, label in enumerate(name.split(".")):
        if label == WILDCARD and index == 0:
            continue
        if WILDCARD in label:
            raise _bad(f"owner name {_q(name)}: '*' is only allowed as the whole first label")
        problem = _service_label_problem(label)
        if problem is not None:
            raise _bad(f"owner name {_q(name)}: {problem}")


def validate_absolute_name(name: str, *, allow_underscore: bool = False) -> str:
    """Check a canonical absolute name without trailing dot (a record's target).

    Args:
        name: the name, e.g. ``"mail.alice.p2p"``.
        allow_underscore: accept labels like ``_acme-challenge`` (CNAME targets);
            host names (NS, MX, SRV targets) are strict LDH.

    Returns:
        `name`, unchanged.

    Raises:
        InvalidUpdate: `BAD_NAME`.
    """
    if not isinstance(name, str) or not name:
        raise _bad("target name is empty")
    if len(name) > MAX_NAME_BYTES or not name.isascii():
        raise _bad(f"name {_q(name)} must be canonical ASCII of at most 253 bytes")
    check = _service_label_problem if allow_underscore else _label_problem
    for label in name.split("."):
        problem = check(label)
        if problem is not None:
            raise _bad(f"name {_q(name)}: {problem}")
    return name


def absolute_name(relative: str, domain: str) -> str:
    """The absolute name of an owner name: ``("www", "alice.p2p")`` -> ``"www.alice.p2p"``.

    Raises:
        InvalidUpdate: `BAD_NAME` if `relative` is invalid or the result is over 253 bytes.
    """
    validate_relative_name(relative)
    if relative == APEX:
        return domain
    full = f"{relative}.{domain}"
    if len(full) > MAX_NAME_BYTES:
        raise _bad(f"name {_q(full)} is longer than {MAX_NAME_BYTES} bytes")
    return full


def relative_name(absolute: str, domain: str) -> str:
    """The owner name of `absolute` relative to `domain` (``@`` for the domain itself).

    One trailing dot on `absolute` is allowed. The inverse of `absolute_name`.

    Raises:
        InvalidUpdate: `BAD_NAME` if `absolute` is not at or under `domain`, or invalid.
    """
    name = absolute.removesuffix(".")
    if name == domain:
        return APEX
    suffix = "." + domain
    if not name.endswith(suffix) or len(name) == len(suffix):
        raise _bad(f"name {_q(absolute)} is not at or under {_q(domain)}")
    _check_length(name, absolute)
    relative = name[: -len(suffix)]
    _check_relative_labels(relative)
    return relative
