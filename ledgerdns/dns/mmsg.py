"""Batched UDP for the worker: many datagrams per system call (Linux ``recvmmsg``/``sendmmsg``).

The standard library has no binding for these calls, so this module reaches
them through `ctypes` (libc). Under load a worker then receives up to `SLOTS`
queries with one call and sends their replies with one more, instead of two
calls per query: that is what lets a Python worker keep up with C servers.

Each receive slot has its own buffer and address; each send slot has two
iovecs: the query's ID (the first two bytes of the receive buffer, in place)
and the stored reply's tail (the reply after its ID, a bytes object whose data
sits at a fixed offset from its id: see `_data_offset`). So a repeat question is
answered with no copying and no Python address objects at all.

`available()` says whether the calls exist (Linux with glibc or musl);
otherwise the worker uses its plain ``recvfrom``/``sendto`` loop.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import socket
import struct
from collections.abc import Callable
from typing import Any

SLOTS = 64
BUFFER = 65_535  # a whole datagram always fits: nothing is ever truncated
NAME_SIZE = 128  # sizeof(struct sockaddr_storage)
MSG_WAITFORONE = 0x10000


class _IoVec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]


class _MsgHdr(ctypes.Structure):
    _fields_ = [
        ("name", ctypes.c_void_p),
        ("namelen", ctypes.c_uint32),
        ("iov", ctypes.c_void_p),
        ("iovlen", ctypes.c_size_t),
        ("control", ctypes.c_void_p),
        ("controllen", ctypes.c_size_t),
        ("flags", ctypes.c_int),
    ]


class _MMsgHdr(ctypes.Structure):
    _fields_ = [("hdr", _MsgHdr), ("len", ctypes.c_uint)]


_SIZE = ctypes.sizeof(_MMsgHdr)
_OFF_NAMELEN = _MsgHdr.namelen.offset
_OFF_LEN = _MMsgHdr.len.offset
_IOV_SIZE = ctypes.sizeof(_IoVec)
_U32 = struct.Struct("I")
_IOV = struct.Struct("PN")  # base, len

Entry = bytes  # a reply tail; `serve` finds its bytes at id(tail) + _DATA_OFFSET


def _data_offset() -> int | None:
    """Where a bytes object's data starts, from its id (CPython's layout), or None if unsure.

    The reply table keeps bare bytes, not (bytes, address, length) tuples: 96 bytes less
    per reply kept, i.e. per name asked (issue 21). Checked here on two objects.
    """
    found = set()
    for probe in (b"probe one", bytes(range(40))):
        address = ctypes.cast(ctypes.c_char_p(probe), ctypes.c_void_p).value
        found.add(None if address is None else address - id(probe))
    offset = found.pop()
    return offset if not found else None


_DATA_OFFSET = _data_offset()


def _libc() -> Any:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        libc.recvmmsg.argtypes = [
            ctypes.c_int,
            ctypes.c_void_p,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_void_p,
        ]
        libc.sendmmsg.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int]
    except (OSError, AttributeError):
        return None
    return libc


_LIBC = _libc()


def available() -> bool:
    """Whether batched calls can be used here."""
    return (
        _LIBC is not None
        and _DATA_OFFSET is not None
        and os.environ.get("LEDGERDNS_DNS_NO_MMSG") != "1"
    )


def unpack_address(raw: bytes) -> Any:
    """A ``sockaddr_in``/``sockaddr_in6`` as the tuple `socket.sendto` takes."""
    family = int.from_bytes(raw[:2], "little")
    port = int.from_bytes(raw[2:4], "big")
    if family == socket.AF_INET:
        return socket.inet_ntop(socket.AF_INET, raw[4:8]), port
    flowinfo = int.from_bytes(raw[4:8], "big")
    scope = int.from_bytes(raw[24:28], "little")
    return socket.inet_ntop(socket.AF_INET6, raw[8:24]), port, flowinfo, scope


Classify = Callable[[bytes], int]


class BatchServer:
    """The batched hot loop over one UDP socket.

    Args:
        fd: the bound UDP socket's descriptor (blocking).
        replies: query tail -> `Entry` (read only here).
        check: the rate limiter's verdict for a packed client address, or None.
        on_other: called with ``(data, address_tuple, verdict)`` for every
            datagram that is not a stored repeat question (to pass up, slip or
            drop); `verdict` is the rate limiter's (0 when allowed).
        fallback: the reply tail for an allowed query tail `replies` lacks, or
            None (`NameTable.answer`); may be None.
    """

    def __init__(
        self,
        fd: int,
        replies: dict[bytes, Entry],
        check: Callable[[bytes], int] | None,
        on_other: Callable[[bytes, Any, int], None],
        fallback: Callable[[bytes], Entry | None] | None = None,
    ) -> None:
        self._fd = fd
        self._fallback = fallback
        self.answered = 0  # replies sent from `replies` or `fallback`
        self._replies = replies
        self._check = check
        self._on_other = on_other
        self._buffers = ctypes.create_string_buffer(SLOTS * BUFFER)
        self._names = ctypes.create_string_buffer(SLOTS * NAME_SIZE)
        self._riov = (_IoVec * SLOTS)()
        self._rmsgs = (_MMsgHdr * SLOTS)()
        self._siov = (_IoVec * (2 * SLOTS))()
        self._smsgs = (_MMsgHdr * SLOTS)()
        base, names = ctypes.addressof(self._buffers), ctypes.addressof(self._names)
        for i in range(SLOTS):
            self._riov[i].base, self._riov[i].len = base + i * BUFFER, BUFFER
            hdr = self._rmsgs[i].hdr
            hdr.name, hdr.namelen = names + i * NAME_SIZE, NAME_SIZE
            hdr.iov, hdr.iovlen = ctypes.addressof(self._riov[i]), 1
            self._siov[2 * i].base, self._siov[2 * i].len = base + i * BUFFER, 2
            out = self._smsgs[i].hdr
            out.name = names + i * NAME_SIZE
            out.iov, out.iovlen = ctypes.addressof(self._siov[2 * i]), 2
        self._template = bytes(memoryview(self._smsgs).cast("B"))
        self._rtemplate = bytes(memoryview(self._rmsgs).cast("B"))

    def serve(self) -> None:
        """Answer forever."""
        recvmmsg, sendmmsg = _LIBC.recvmmsg, _LIBC.sendmmsg
        fd, rmsgs, smsgs = self._fd, self._rmsgs, self._smsgs
        rmv = memoryview(rmsgs).cast("B")
        smv = memoryview(smsgs).cast("B")
        siv = memoryview(self._siov).cast("B")
        buffers = memoryview(self._buffers).cast("B")
        namev = memoryview(self._names).cast("B")
        template = self._template
        get, check, on_other = self._replies.get, self._check, self._on_other
        fallback = self._fallback
        u32, iov, af_inet = _U32, _IOV, int(socket.AF_INET)
        offset = _DATA_OFFSET
        assert offset is not None  # `available` said so
        # The replies being sent, held until sendmmsg returns: the control thread may drop
        # one from the table meanwhile, and the kernel reads its bytes by address.
        held: list[Entry | None] = [None] * SLOTS
        rtemplate = self._rtemplate
        namelen_at = [i * _SIZE + _OFF_NAMELEN for i in range(SLOTS)]
        len_at = [i * _SIZE + _OFF_LEN for i in range(SLOTS)]
        while True:
            count = recvmmsg(fd, rmsgs, SLOTS, MSG_WAITFORONE, None)
            if count <= 0:
                continue  # EINTR, or an ICMP error for an earlier reply
            sent = 0
            gap = False
            for i in range(count):
                size = u32.unpack_from(rmv, len_at[i])[0]
                at = i * BUFFER
                if size < 12 or buffers[at + 2] & 0x80:
                    continue  # not even a header, or a response: never answered
                verdict = 0
                if check is not None:
                    at_name = i * NAME_SIZE
                    raw = (
                        bytes(namev[at_name + 4 : at_name + 8])
                        if namev[at_name] == af_inet
                        else bytes(namev[at_name + 8 : at_name + 24])
                    )
                    verdict = check(raw)
                entry = None
                if not verdict:
                    tail = bytes(buffers[at + 2 : at + size])
                    entry = get(tail)
                    if entry is None and fallback is not None:
                        entry = fallback(tail)
                if entry is None:
                    namelen = u32.unpack_from(rmv, namelen_at[i])[0]
                    on_other(
                        bytes(buffers[at : at + size]),
                        unpack_address(bytes(namev[i * NAME_SIZE : i * NAME_SIZE + namelen])),
                        verdict,
                    )
                    continue
                if sent != i:  # a slot before was not answered here: close the gap
                    gap = True
                    smv[sent * _SIZE : (sent + 1) * _SIZE] = template[i * _SIZE : (i + 1) * _SIZE]
                held[sent] = entry
                iov.pack_into(siv, (2 * i + 1) * _IOV_SIZE, id(entry) + offset, len(entry))
                u32.pack_into(
                    smv, sent * _SIZE + _OFF_NAMELEN, u32.unpack_from(rmv, namelen_at[i])[0]
                )
                sent += 1
            rmv[: count * _SIZE] = rtemplate[: count * _SIZE]  # the kernel wrote name lengths
            if sent:
                sendmmsg(fd, smsgs, sent, 0)
                self.answered += sent
                if gap:
                    smv[:] = template
