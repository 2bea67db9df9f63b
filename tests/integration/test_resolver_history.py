"""The resolver learns the validator-set history from answers, and keeps it (issue 16).

A ledger whose set changed twice (4 -> 5 -> 6 validators) is served by a small
proof server on a real loopback UDP socket, which builds each answer with the
node's `ProofBuilder` but fits at most one set change in it (``more_changes``).
The resolver's `Verifier` must follow both changes, asking the same node again
from where it got to, and afterwards ask with the newest set it knows, so a
later answer carries no change at all.
"""

from __future__ import annotations

import dnslib
import pytest
import trio

from chain.dns_proof import PROOF_OPTION_CODE, ProofRequest, VerifiedAnswer
from chain.ledger import Ledger
from ledgerdns.dns.proofs import ProofBuilder
from ledgerdns.resolver.verifier import Verifier
from tests.unit.test_dns_proof import KEYS, add_validator, answer_for, make_ledger

pytestmark = [pytest.mark.integration, pytest.mark.trio]


class ProofServer:
    """Answers proof queries from `ledger`, each answer at most `budget` bytes.

    Over UDP a reply longer than `udp_limit` goes out truncated (question only,
    TC=1); `serve_tcp` answers in whole.
    """

    def __init__(self, ledger: Ledger, budget: int, udp_limit: int = 65535) -> None:
        self.builder = ProofBuilder(ledger)
        self.budget = budget
        self.udp_limit = udp_limit
        self.known_from: list[int] = []  # what each request said the client had
        self.transports: list[str] = []

    def reply_to(self, data: bytes) -> bytes:
        query = dnslib.DNSRecord.parse(data)
        (option,) = [o for rr in query.ar if rr.rtype == 41 for o in rr.rdata]
        request = ProofRequest.from_bytes(bytes(option.data))
        self.known_from.append(request.known_from)
        labels = tuple(label.lower() for label in query.q.qname.label)
        answer = self.builder.answer(request, labels, budget=self.budget)
        assert answer is not None
        reply = query.reply()
        reply.add_ar(
            dnslib.EDNS0(
                udp_len=1232, opts=[dnslib.EDNSOption(PROOF_OPTION_CODE, answer.to_bytes())]
            )
        )
        return bytes(reply.pack())

    async def serve(self, sock: trio.socket.SocketType) -> None:
        while True:
            data, peer = await sock.recvfrom(65535)
            self.transports.append("udp")
            reply = self.reply_to(data)
            if len(reply) > self.udp_limit:
                self.known_from.pop()  # not answered: the client asks again over TCP
                cut = dnslib.DNSRecord.parse(data).reply()
                cut.header.tc = 1
                reply = bytes(cut.pack())
            await sock.sendto(reply, peer)

    async def serve_tcp(self, listener: trio.SocketListener) -> None:
        while True:
            stream = await listener.accept()
            async with stream:
                self.transports.append("tcp")
                data = b""
                while len(data) < 2 or len(data) < 2 + int.from_bytes(data[:2], "big"):
                    data += await stream.receive_some(65535)
                reply = self.reply_to(data[2:])
                await stream.send_all(len(reply).to_bytes(2, "big") + reply)


@pytest.fixture(scope="module")
def changed() -> Ledger:
    ledger = make_ledger()
    add_validator(ledger, "v4", KEYS[4])
    add_validator(ledger, "v5", KEYS[5])
    assert len(ledger.rosters()) == 3
    return ledger


async def test_the_set_history_is_learned_from_answers_and_kept(changed: Ledger) -> None:
    whole = answer_for(changed, "alice.p2p")
    assert len(whole.changes) == 2
    server = ProofServer(changed, budget=len(whole.to_bytes()) - 1)  # one change per answer
    with trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM) as sock:
        await sock.bind(("127.0.0.1", 0))
        async with trio.open_nursery() as nursery:
            nursery.start_soon(server.serve, sock)
            verifier = Verifier(
                changed.params, (sock.getsockname(),), max_age_ms=60_000, timeout_s=5.0,
                now_ms=lambda: changed.head.time_ms + 1000,
            )  # fmt: skip
            assert [v.n for _, v in verifier.followed] == [4]
            result = await verifier.fetch((b"www", b"alice", b"p2p"), 1)
            assert isinstance(result, VerifiedAnswer)
            assert result.state == changed.get_domain("alice.p2p")
            followed = verifier.followed
            assert [v.n for _, v in followed] == [4, 5, 6]
            first_change = whole.changes[0].from_height
            assert server.known_from == [1, first_change]  # asked again from where it got to
            assert (verifier.accepted, verifier.refused) == (1, 0)

            server.known_from.clear()
            again = await verifier.fetch((b"bob", b"p2p"), 1)
            assert isinstance(again, VerifiedAnswer) and again.state is None  # proven absent
            assert again.changes == ()  # nothing left to learn
            assert server.known_from == [followed[-1][0]]
            nursery.cancel_scope.cancel()


async def test_questions_for_a_name_in_flight_share_its_fetch(changed: Ledger) -> None:
    server = ProofServer(changed, budget=65_000)
    with trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM) as sock:
        await sock.bind(("127.0.0.1", 0))
        async with trio.open_nursery() as nursery:
            nursery.start_soon(server.serve, sock)
            verifier = Verifier(
                changed.params, (sock.getsockname(),), max_age_ms=60_000, timeout_s=5.0,
                now_ms=lambda: changed.head.time_ms + 1000,
            )  # fmt: skip
            results: list[object] = []

            async def ask(qtype: int) -> None:
                results.append(await verifier.fetch((b"alice", b"p2p"), qtype))

            async with trio.open_nursery() as askers:
                for qtype in (1, 28, 16):  # A, AAAA, TXT: one proof serves them all
                    askers.start_soon(ask, qtype)
            assert len(server.known_from) == 1 and verifier.coalesced == 2
            assert len(results) == 3 and all(r is results[0] for r in results)
            assert isinstance(results[0], VerifiedAnswer)
            nursery.cancel_scope.cancel()


async def test_an_upstream_whose_proofs_do_not_fit_udp_is_asked_over_tcp(changed: Ledger) -> None:
    server = ProofServer(changed, budget=65_000, udp_limit=1232)
    assert len(answer_for(changed, "alice.p2p").to_bytes()) > 1232  # six validators, two changes
    sock, tcp = await _udp_and_tcp()
    address = sock.getsockname()
    with sock, tcp:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(server.serve, sock)
            nursery.start_soon(server.serve_tcp, trio.SocketListener(tcp))
            verifier = Verifier(
                changed.params, (address,), max_age_ms=60_000, timeout_s=5.0,
                now_ms=lambda: changed.head.time_ms + 1000,
            )  # fmt: skip
            first = await verifier.fetch((b"alice", b"p2p"), 1)
            assert isinstance(first, VerifiedAnswer) and server.transports == ["udp", "tcp"]
            second = await verifier.fetch((b"bob", b"p2p"), 1)
            assert isinstance(second, VerifiedAnswer)
            assert server.transports == ["udp", "tcp", "tcp"]  # no UDP round trip wasted
            nursery.cancel_scope.cancel()


async def _udp_and_tcp() -> tuple[trio.socket.SocketType, trio.socket.SocketType]:
    """A UDP socket on a free loopback port and a listening TCP socket on the same port."""
    for _ in range(10):
        udp = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
        await udp.bind(("127.0.0.1", 0))
        tcp = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_STREAM)
        try:
            await tcp.bind(udp.getsockname())
        except OSError:  # that port is taken for TCP: another try
            udp.close()
            tcp.close()
            continue
        tcp.listen()
        return udp, tcp
    raise OSError("no loopback port free for both UDP and TCP")
