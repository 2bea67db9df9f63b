"""`ValidatorHello`: a validator saying which libp2p peer speaks for it, and where to reach it.

Validators send their votes straight to each other over long-lived links
(`ledgerdns.protocol.validator_links`), as CometBFT's persistent peers do,
instead of through gossip, where each vote crossed the mesh several times and
paid a pubsub envelope per hop (issue 20). To link up they must know which
peer is which validator: each validator signs a hello binding its validator
key to its peer id and listen addresses, gossips it on the ``blocks`` topic
now and then, and sends it first on every link it opens. The newest hello
(by `time_ms`) of a validator wins. The signature covers the genesis hash, so
a hello of one network means nothing on another.
"""

from __future__ import annotations

from dataclasses import dataclass

from chain.crypto import SIGNATURE_SIZE, PrivateKey, PublicKey, sha256, validate_public_key, verify
from chain.encoding import Kind, Reader, frame
from chain.errors import InvalidUpdate, RejectReason
from chain.tx import MAX_CHAIN_ID

MAX_PEER_ID_BYTES = 64  # a libp2p peer id (an identity multihash of an ed25519 key is 38)
MAX_ADDRS = 8
MAX_ADDR_CHARS = 256
MAX_HELLO_BYTES = 4 * 1024


def _sign_bytes(
    chain_id: str,
    genesis_hash: bytes,
    validator: bytes,
    peer_id: bytes,
    addrs: tuple[str, ...],
    time_ms: int,
) -> bytes:
    return frame(
        Kind.HELLO_SIGNING, chain_id, genesis_hash, validator, peer_id, list(addrs), time_ms
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class ValidatorHello:
    """Validator `validator` is reachable as libp2p peer `peer_id` at `addrs` (as of `time_ms`)."""

    chain_id: str
    validator: PublicKey
    peer_id: bytes
    addrs: tuple[str, ...]
    time_ms: int
    signature: bytes

    @classmethod
    def create(
        cls,
        key: PrivateKey,
        *,
        chain_id: str,
        genesis_hash: bytes,
        peer_id: bytes,
        addrs: tuple[str, ...],
        time_ms: int,
    ) -> ValidatorHello:
        """Sign a hello with the validator key (`genesis_hash` is signed, not sent)."""
        addrs = tuple(addrs[:MAX_ADDRS])
        digest = sha256(
            _sign_bytes(chain_id, genesis_hash, key.public_key, peer_id, addrs, time_ms)
        )
        return cls(
            chain_id=chain_id,
            validator=key.public_key,
            peer_id=peer_id,
            addrs=addrs,
            time_ms=time_ms,
            signature=key.sign_digest_native(digest),
        )

    def is_valid_signature(self, genesis_hash: bytes) -> bool:
        """Whether the validator key signed this hello on the network of `genesis_hash`."""
        digest = sha256(
            _sign_bytes(
                self.chain_id, genesis_hash, self.validator, self.peer_id, self.addrs, self.time_ms
            )
        )
        return verify(self.validator, self.signature, digest)

    def to_bytes(self) -> bytes:
        """Canonical wire bytes."""
        return frame(
            Kind.VALIDATOR_HELLO,
            self.chain_id,
            bytes(self.validator),
            self.peer_id,
            list(self.addrs),
            self.time_ms,
            self.signature,
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> ValidatorHello:
        """Decode strictly (the signature is not checked here).

        Raises:
            InvalidUpdate: malformed or non-canonical input.
        """
        r = Reader.open(
            data, Kind.VALIDATOR_HELLO, "validator_hello", fields=6, max_size=MAX_HELLO_BYTES
        )
        chain_id = r.text("chain_id", maximum=MAX_CHAIN_ID)
        validator = validate_public_key(r.bytes("validator", size=33))
        peer_id = r.bytes("peer_id", maximum=MAX_PEER_ID_BYTES)
        raw_addrs = r.array("addrs", maximum=MAX_ADDRS)
        addrs = []
        for item in raw_addrs:
            if type(item) is not str or not item or len(item) > MAX_ADDR_CHARS:
                raise InvalidUpdate(RejectReason.MALFORMED, "validator_hello.addrs: bad address")
            addrs.append(item)
        time_ms = r.uint("time_ms", maximum=2**63 - 1)
        signature = r.bytes("signature", size=SIGNATURE_SIZE)
        r.done()
        if not peer_id:
            raise InvalidUpdate(RejectReason.MALFORMED, "validator_hello.peer_id: empty")
        return cls(
            chain_id=chain_id,
            validator=validator,
            peer_id=peer_id,
            addrs=tuple(addrs),
            time_ms=time_ms,
            signature=signature,
        )
