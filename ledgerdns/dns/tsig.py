"""TSIG (RFC 8945) for the DNS face: the keyring from the settings, and signed or error replies.

Verification itself is dnspython's (``dns.message.from_wire(wire, keyring=...)``:
key, then MAC, then time, in the RFC's order), with the time then checked
again against our own cap (`is_on_time`: the request's fudge, at most
`MAX_FUDGE_S`). What dnspython does not do is write the error replies a server
owes a client: BADKEY and BADSIG unsigned with an empty MAC, BADTIME signed
(RFC 8945 5.2 and 5.3.2).
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import cast

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdtypes.ANY.TSIG
import dns.rrset
import dns.tsig

from ledgerdns.dns.settings import TsigKey
from ledgerdns.dns.wire import EDNS_PAYLOAD

Keyring = dict[dns.name.Name, dns.tsig.Key]
TsigRdata = dns.rdtypes.ANY.TSIG.TSIG

# The most clock skew accepted, whatever fudge a request names (RFC 8945 recommends 300 s;
# a request may say up to 65,535 s, which would stretch the window a captured one works in).
MAX_FUDGE_S = 300

# dnspython's `dns.rcode.to_text(16)` says "BADVERS" (the EDNS rcode that shares the value):
# a TSIG error is named from this table instead.
_ERROR_NAMES = {
    dns.rcode.BADSIG: "badsig",
    dns.rcode.BADKEY: "badkey",
    dns.rcode.BADTIME: "badtime",
    dns.rcode.BADTRUNC: "badtrunc",
}

_HEADER = struct.Struct("!6H")
_QR = 0x8000
_OPCODE_MASK = 0x7800


def make_keyring(keys: Mapping[str, TsigKey]) -> Keyring:
    """The dnspython keyring of the ``[[dns.tsig]]`` keys."""
    return {
        dns.name.from_text(k.name): dns.tsig.Key(k.name, k.secret, k.algorithm)
        for k in keys.values()
    }


def is_on_time(tsig: TsigRdata, now_s: int) -> bool:
    """Whether a verified request's time is within min(its fudge, `MAX_FUDGE_S`) of `now_s`.

    dnspython checks the time against the request's own fudge only; a request
    that fails this gets BADTIME like one that fails dnspython's (RFC 8945 5.2.3).
    """
    return abs(int(tsig.time_signed) - now_s) <= min(int(tsig.fudge), MAX_FUDGE_S)


def bare_reply(message: bytes, rcode: dns.rcode.Rcode) -> bytes | None:
    """A header-only reply to a message that could not be read (None if it is no query)."""
    if len(message) < _HEADER.size:
        return None
    msg_id, flags = _HEADER.unpack_from(message)[:2]
    if flags & _QR:
        return None
    return _HEADER.pack(msg_id, _QR | (flags & _OPCODE_MASK) | int(rcode), 0, 0, 0, 0)


def reply(query: dns.message.Message, rcode: dns.rcode.Rcode) -> bytes:
    """The zone (question) section back with `rcode`; signed if `query` was verified."""
    response = dns.message.make_response(query, our_payload=EDNS_PAYLOAD)
    response.set_rcode(rcode)
    return response.to_wire()


def _request_tsig(query: dns.message.Message) -> TsigRdata:
    assert query.tsig is not None, "only a signed request gets a TSIG error"
    return cast(TsigRdata, query.tsig[0])


def _with_tsig(response: dns.message.Message, tsig: TsigRdata, name: dns.name.Name) -> bytes:
    response.tsig = dns.rrset.from_rdata(name, 0, tsig)
    response.want_tsig_sign = False  # `tsig` is final: its MAC (or none) is already in it
    return response.to_wire()


def unsigned_error(query: dns.message.Message, error: dns.rcode.Rcode) -> bytes:
    """NOTAUTH with TSIG error `error` (BADKEY, BADSIG) and an empty MAC (RFC 8945 5.3.2).

    Args:
        query: the request, parsed without verification (``keyring=False``).
        error: the TSIG error.
    """
    assert query.keyname is not None
    response = dns.message.make_response(query, our_payload=EDNS_PAYLOAD)  # not verified: unsigned
    response.set_rcode(dns.rcode.NOTAUTH)
    tsig = cast(TsigRdata, _request_tsig(query).replace(mac=b"", error=int(error), other=b""))
    return _with_tsig(response, tsig, query.keyname)


def bad_time(query: dns.message.Message, key: dns.tsig.Key, now_s: int) -> bytes:
    """NOTAUTH with TSIG error BADTIME, signed with `key` (RFC 8945 5.2.3).

    As BIND does, the time signed is the request's (so the client can check the
    MAC whatever its clock says) and the other data holds our time.

    Args:
        query: the request, parsed without verification (its MAC checked out).
        key: the request's key.
        now_s: our clock, unix seconds.
    """
    request = _request_tsig(query)
    response = dns.message.make_response(query, our_payload=EDNS_PAYLOAD)
    response.set_rcode(dns.rcode.NOTAUTH)
    other = (now_s % 2**48).to_bytes(6, "big")
    template = request.replace(mac=b"", error=int(dns.rcode.BADTIME), other=other)
    signed, _ = dns.tsig.sign(  # type: ignore[no-untyped-call]  # dnspython leaves it untyped
        response.to_wire(), key, template, request.time_signed, request.mac
    )
    return _with_tsig(response, cast(TsigRdata, signed), key.name)


def error_name(error: dns.rcode.Rcode) -> str:
    """The TSIG error's name for logs: ``badsig`` for 16 (not dnspython's ``BADVERS``)."""
    return _ERROR_NAMES.get(error, dns.rcode.to_text(error).lower())


@dataclass(frozen=True, slots=True)
class Refusal:
    """A signed request that failed verification.

    Attributes:
        error: the TSIG error (BADKEY, BADSIG or BADTIME).
        reply: the NOTAUTH reply the client is owed (RFC 8945 5.2, 5.3.2).
    """

    error: dns.rcode.Rcode
    reply: bytes


def verify(
    message: bytes, request: dns.message.Message, keyring: Keyring, now_s: int
) -> dns.message.Message | Refusal:
    """`message` parsed with its TSIG verified, or the error reply it is owed.

    Args:
        message: the request's wire bytes.
        request: the same, parsed without verification (``keyring=False``), signed.
        keyring: the keys we know.
        now_s: our clock, unix seconds.

    Raises:
        dns.exception.DNSException: not a well-formed signed message (e.g. a TSIG
            error set in a request): the caller answers FORMERR.
    """
    assert request.keyname is not None
    key = keyring.get(request.keyname)
    if key is None:
        return Refusal(dns.rcode.BADKEY, unsigned_error(request, dns.rcode.BADKEY))
    try:
        verified = dns.message.from_wire(message, keyring={request.keyname: key})
    except (dns.tsig.BadKey, dns.tsig.BadAlgorithm):
        return Refusal(dns.rcode.BADKEY, unsigned_error(request, dns.rcode.BADKEY))
    except dns.tsig.BadSignature:
        return Refusal(dns.rcode.BADSIG, unsigned_error(request, dns.rcode.BADSIG))
    except dns.tsig.BadTime:
        return Refusal(dns.rcode.BADTIME, bad_time(request, key, now_s))
    assert verified.tsig is not None
    # dnspython allowed the request's own fudge; we allow at most MAX_FUDGE_S.
    if not is_on_time(cast(TsigRdata, verified.tsig[0]), now_s):
        return Refusal(dns.rcode.BADTIME, bad_time(request, key, now_s))
    return verified


def sign_reply(reply_wire: bytes, request: dns.message.Message, limit: int) -> bytes:
    """Our unsigned reply `reply_wire` to the verified `request`, signed with its key.

    The reply is read back and written again with the TSIG record last (RFC 8945
    5.3); if it no longer fits in `limit` bytes it goes out truncated (TC=1, no
    records: the client retries over TCP), still signed.
    """
    response = dns.message.from_wire(reply_wire)
    assert isinstance(request.keyring, dns.tsig.Key) and request.mac is not None
    response.use_tsig(request.keyring)  # its name and algorithm go with it
    response.request_mac = request.mac
    try:
        return response.to_wire(max_size=limit)
    except dns.exception.TooBig:
        response.answer, response.authority, response.additional = [], [], []
        response.flags |= dns.flags.TC
        return response.to_wire(max_size=limit)
