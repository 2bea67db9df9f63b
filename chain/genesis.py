"""The genesis file: one JSON document that defines a network.

The loader takes text (the node reads the file) and answers every mistake
with a `ConfigError` naming the key, e.g. ``validators[1].public_key: not a
point on secp256k1``. `Genesis.hash()` is the SHA-256 of the canonical CBOR
of the parsed content, so formatting does not matter but every value does.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields, replace
from typing import Any

from chain.crypto import PublicKey, sha256, validate_public_key
from chain.encoding import CborValue, Kind, frame
from chain.errors import ConfigError, InvalidUpdate
from chain.names import normalize_name, validate_absolute_name, validate_domain
from chain.params import ChainParams, ConsensusParams, NamingParams
from chain.quorum import ValidatorSet
from chain.records import (
    Record,
    RecordLimits,
    canonical_record_set,
    records_to_cbor,
    validate_record_set,
)

FORMAT = 1
MAX_NAMESERVERS = 13  # as many as a 512-byte referral carries (the root's 13)
MAX_GENESIS_CHARS = 16 * 1024 * 1024
# Every integer in a genesis file fits 2**48: times in ms until the year 10889,
# lifetimes of millennia, and sums like `now + lifetime` stay far below 2**63.
MAX_INT = 2**48


@dataclass(frozen=True, slots=True, kw_only=True)
class InitialDomain:
    """A name present from the start (for example the network's own service names)."""

    domain: str
    owner: PublicKey
    records: tuple[Record, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Genesis:
    """A parsed, validated genesis file."""

    params: ChainParams
    genesis_time_ms: int
    validator_names: tuple[str, ...]
    domains: tuple[InitialDomain, ...]

    def __post_init__(self) -> None:
        # Computed once and carried in the params, where every signer and verifier
        # already looks for `chain_id`. Always recomputed: `dataclasses.replace`
        # copies params holding the hash of the genesis they came from.
        params = replace(
            self.params, genesis_hash=self._compute_hash(), validator_names=self.validator_names
        )
        object.__setattr__(self, "params", params)

    @property
    def chain_id(self) -> str:
        """The network's name."""
        return self.params.chain_id

    def hash(self) -> bytes:
        """SHA-256 of the canonical encoding: the identity of the network."""
        return self.params.genesis_hash

    def _compute_hash(self) -> bytes:
        p = self.params  # every field but genesis_hash, which is this hash
        nameservers: list[CborValue] = list(p.nameservers)
        consensus: list[CborValue] = [getattr(p.consensus, f.name) for f in fields(p.consensus)]
        domains: list[CborValue] = [
            [d.domain, bytes(d.owner), records_to_cbor(d.records)] for d in self.domains
        ]
        return sha256(
            frame(
                Kind.GENESIS,
                p.chain_id,
                self.genesis_time_ms,
                list(p.tlds),
                [bytes(k) for k in p.validators.keys],
                list(self.validator_names),
                consensus,
                p.name_lifetime_s,
                p.max_tx_lifetime_s,
                p.record_limits.max_records,
                p.record_limits.max_bytes,
                domains,
                *_naming_fields(p.naming, always=bool(p.nameservers)),
                *([nameservers] if nameservers else []),
            )
        )

    def to_json(self) -> str:
        """The genesis file text."""
        p = self.params
        doc = {
            "format": FORMAT,
            "chain_id": p.chain_id,
            "genesis_time_ms": self.genesis_time_ms,
            "tlds": list(p.tlds),
            "validators": [
                {"name": name, "public_key": bytes(key).hex()}
                for name, key in zip(self.validator_names, p.validators.keys, strict=True)
            ],
            "consensus": {f.name: getattr(p.consensus, f.name) for f in fields(p.consensus)},
            "names": {
                "lifetime_s": p.name_lifetime_s,
                "max_tx_lifetime_s": p.max_tx_lifetime_s,
                "max_records": p.record_limits.max_records,
                "max_recordset_bytes": p.record_limits.max_bytes,
            },
            "naming": _naming_json(p.naming),
            **({"nameservers": list(p.nameservers)} if p.nameservers else {}),
            "domains": [
                {
                    "domain": d.domain,
                    "owner": bytes(d.owner).hex(),
                    "records": [r.to_text(d.domain) for r in d.records],
                }
                for d in self.domains
            ],
        }
        return json.dumps(doc, indent=2) + "\n"

    @staticmethod
    def naming_from_json(doc: dict[str, Any], *, heartbeat_ms: int) -> NamingParams:
        """Parse and check a genesis ``naming`` object (for tools that build one).

        Raises:
            ConfigError: naming the offending key (``naming.stamp_count``).
        """
        return _naming(doc, ConsensusParams(heartbeat_ms=heartbeat_ms))

    @staticmethod
    def nameservers_from_json(items: list[Any]) -> tuple[str, ...]:
        """Parse and check a genesis ``nameservers`` list (for tools that build one).

        Raises:
            ConfigError: naming the offending entry (``nameservers[1]``).
        """
        return _nameservers(items)

    @classmethod
    def from_json(cls, text: str) -> Genesis:
        """Parse and validate genesis text.

        Raises:
            ConfigError: naming the offending key.
        """
        if len(text) > MAX_GENESIS_CHARS:
            raise ConfigError(f"larger than {MAX_GENESIS_CHARS} characters")
        try:
            doc = json.loads(text)
        except ValueError as exc:  # JSONDecodeError, and integers past the digit limit
            raise ConfigError(f"not valid JSON: {exc}") from None
        except RecursionError:
            raise ConfigError("not valid JSON: nested too deeply") from None
        return _parse(doc)


def _get(doc: dict[str, Any], key: str, kind: type, path: str, default: Any = None) -> Any:
    where = f"{path}{key}"
    if key not in doc:
        if default is None:
            raise ConfigError("missing", key=where)
        return default
    value = doc[key]
    if kind is int and (type(value) is not int or not 0 <= value <= MAX_INT):
        raise ConfigError(f"expected an integer from 0 to {MAX_INT}", key=where)
    if kind is not int and not isinstance(value, kind):
        raise ConfigError(f"expected {kind.__name__}", key=where)
    if kind is str:
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ConfigError("not valid Unicode text", key=where) from None
    return value


def _parse(doc: Any) -> Genesis:
    if not isinstance(doc, dict):
        raise ConfigError("a genesis file is a JSON object")
    if _get(doc, "format", int, "") != FORMAT:
        raise ConfigError(f"unsupported format, this node reads format {FORMAT}", key="format")
    chain_id = _get(doc, "chain_id", str, "")
    if not 1 <= len(chain_id.encode()) <= 64 or not chain_id.isprintable():
        raise ConfigError("1 to 64 printable characters", key="chain_id")
    tlds = []
    for i, tld in enumerate(_get(doc, "tlds", list, "")):
        try:
            if not isinstance(tld, str) or normalize_name(tld) != tld:
                raise ConfigError("a canonical lower-case name without trailing dot")
        except InvalidUpdate as exc:
            raise ConfigError(str(exc), key=f"tlds[{i}]") from None
        except ConfigError as exc:
            raise ConfigError(str(exc), key=f"tlds[{i}]") from None
        tlds.append(tld)
    if not tlds or len(set(tlds)) != len(tlds):
        raise ConfigError("list one or more distinct TLDs", key="tlds")
    names, keys = [], []
    for i, entry in enumerate(_get(doc, "validators", list, "")):
        where = f"validators[{i}]."
        if not isinstance(entry, dict):
            raise ConfigError("expected an object", key=f"validators[{i}]")
        names.append(_get(entry, "name", str, where, default=f"validator-{i}"))
        keys.append(_public_key(_get(entry, "public_key", str, where), where + "public_key"))
    try:
        validators = ValidatorSet(tuple(keys))
    except InvalidUpdate as exc:
        raise ConfigError(str(exc), key="validators") from None
    consensus = _consensus(_get(doc, "consensus", dict, "", default={}))
    names_doc = _get(doc, "names", dict, "", default={})
    limits = RecordLimits(
        max_records=_get(names_doc, "max_records", int, "names.", default=64),
        max_bytes=_get(names_doc, "max_recordset_bytes", int, "names.", default=8192),
    )
    params = ChainParams(
        chain_id=chain_id,
        tlds=tuple(tlds),
        validators=validators,
        name_lifetime_s=_get(names_doc, "lifetime_s", int, "names.", default=0),
        max_tx_lifetime_s=_get(names_doc, "max_tx_lifetime_s", int, "names.", default=86400),
        record_limits=limits,
        consensus=consensus,
        naming=_naming(_get(doc, "naming", dict, "", default={}), consensus),
        nameservers=_nameservers(_get(doc, "nameservers", list, "", default=[])),
    )
    domains = _domains(_get(doc, "domains", list, "", default=[]), params)
    return Genesis(
        params=params,
        genesis_time_ms=_get(doc, "genesis_time_ms", int, ""),
        validator_names=tuple(names),
        domains=domains,
    )


def _public_key(text: str, where: str) -> PublicKey:
    try:
        return validate_public_key(bytes.fromhex(text))
    except ValueError:
        raise ConfigError("expected 66 hex digits", key=where) from None
    except InvalidUpdate as exc:
        raise ConfigError(str(exc), key=where) from None


def _consensus(doc: dict[str, Any]) -> ConsensusParams:
    known = {f.name for f in fields(ConsensusParams)}
    for key in doc:
        if key not in known:
            raise ConfigError(f"unknown key; known: {', '.join(sorted(known))}", key=f"consensus.{key}")
    values = {key: _get(doc, key, int, "consensus.") for key in doc}
    params = ConsensusParams(**values)
    if params.max_block_txs < 1 or params.max_block_bytes < 64 * 1024:
        raise ConfigError("max_block_txs >= 1 and max_block_bytes >= 65536", key="consensus")
    if min(params.timeout_propose_ms, params.timeout_prevote_ms, params.timeout_precommit_ms) < 1:
        raise ConfigError("timeouts must be positive", key="consensus")
    return params


def _nameservers(items: list[Any]) -> tuple[str, ...]:
    """The ``nameservers`` list: distinct host names, canonical, at most `MAX_NAMESERVERS`."""
    if len(items) > MAX_NAMESERVERS:
        raise ConfigError(f"at most {MAX_NAMESERVERS} names", key="nameservers")
    out: list[str] = []
    for i, item in enumerate(items):
        where = f"nameservers[{i}]"
        if not isinstance(item, str):
            raise ConfigError("expected a host name", key=where)
        try:
            name = validate_absolute_name(normalize_name(item.removesuffix(".")))
        except InvalidUpdate as exc:
            raise ConfigError(f"not a host name: {exc.args[0]}", key=where) from None
        if name in out:
            raise ConfigError(f"{name} listed twice", key=where)
        out.append(name)
    return tuple(out)


def _naming_fields(naming: NamingParams, *, always: bool = False) -> list[CborValue]:
    """What the genesis hash covers of the naming rules: nothing when they are the defaults
    (unless `always`: a later field follows them).

    So a genesis without them (every file before issue 15) keeps its hash.
    """
    if naming == NamingParams() and not always:
        return []
    values: list[CborValue] = []
    for f in fields(naming):
        value = getattr(naming, f.name)
        values.append(list(value) if isinstance(value, tuple) else value)
    return [values]


def _naming_json(naming: NamingParams) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in fields(naming):
        value = getattr(naming, f.name)
        out[f.name] = list(value) if isinstance(value, tuple) else value
    return out


# (key, lowest, highest) of every integer naming setting
_NAMING_RANGES = {
    "reveal_delay": (0, 2**20),
    "reveal_window": (0, 2**20),
    "stamp_work": (0, 2**40),
    "stamp_count": (1, 64),
    "stamp_memory_kib": (8, 1024 * 1024),
    "stamp_passes": (1, 16),
    "max_block_commits": (0, 2**20),
    "max_block_registrations": (0, 2**20),
}


def _naming(doc: dict[str, Any], consensus: ConsensusParams) -> NamingParams:
    known = {f.name for f in fields(NamingParams)}
    values: dict[str, Any] = {}
    for key in doc:
        if key not in known:
            raise ConfigError(f"unknown key; known: {', '.join(sorted(known))}", key=f"naming.{key}")
        if key == "stamp_short_factors":
            values[key] = _short_factors(_get(doc, key, list, "naming."))
            continue
        value = _get(doc, key, int, "naming.")
        low, high = _NAMING_RANGES[key]
        if not low <= value <= high:
            raise ConfigError(f"expected {low} to {high}", key=f"naming.{key}")
        values[key] = value
    naming = NamingParams(**values)
    if not naming.commit_reveal:
        if naming.reveal_window or naming.stamp_work:
            raise ConfigError(
                "reveal_delay 0 registers names directly (no commit, so no reveal window and "
                "no stamp); set reveal_delay >= 1 for commit-reveal",
                key="naming",
            )
        return naming
    if naming.reveal_window < naming.reveal_delay:
        raise ConfigError("reveal_window must be at least reveal_delay", key="naming.reveal_window")
    if naming.reveal_delay > 1 and not consensus.heartbeat_ms:
        raise ConfigError(
            "a reveal delay over one height needs blocks on an idle network: "
            "set consensus.heartbeat_ms",
            key="naming.reveal_delay",
        )
    return naming


def _short_factors(items: list[Any]) -> tuple[int, ...]:
    if len(items) > 63:
        raise ConfigError("at most 63 factors (labels are 1 to 63 characters)", key="naming.stamp_short_factors")
    for i, item in enumerate(items):
        if type(item) is not int or not 1 <= item <= 2**20:
            raise ConfigError("expected an integer from 1 to 1048576", key=f"naming.stamp_short_factors[{i}]")
    return tuple(items)


def _domains(items: list[Any], params: ChainParams) -> tuple[InitialDomain, ...]:
    out: dict[str, InitialDomain] = {}
    for i, entry in enumerate(items):
        where = f"domains[{i}]."
        if not isinstance(entry, dict):
            raise ConfigError("expected an object", key=f"domains[{i}]")
        try:
            domain = validate_domain(_get(entry, "domain", str, where), params.tlds)
            lines = _get(entry, "records", list, where, default=[])
            records = canonical_record_set(
                [Record.from_text(str(line), origin=domain) for line in lines]
            )
            validate_record_set(records, params.record_limits)
        except InvalidUpdate as exc:
            raise ConfigError(str(exc), key=f"domains[{i}]") from None
        if domain in out:
            raise ConfigError(f"{domain} listed twice", key=f"domains[{i}].domain")
        owner = _public_key(_get(entry, "owner", str, where), where + "owner")
        out[domain] = InitialDomain(domain=domain, owner=owner, records=records)
    return tuple(out[d] for d in sorted(out))


def make_single_validator_genesis(
    key: PublicKey,
    *,
    genesis_time_ms: int,
    chain_id: str = "ledgerdns-devnet",
    tlds: tuple[str, ...] = ("p2p",),
    name: str = "validator-0",
) -> Genesis:
    """A fresh one-validator network (the embedded devnet default)."""
    return Genesis(
        params=ChainParams(
            chain_id=chain_id,
            tlds=tlds,
            validators=ValidatorSet((key,)),
            name_lifetime_s=0,
            max_tx_lifetime_s=86400,
            record_limits=RecordLimits(max_records=64, max_bytes=8192),
            consensus=ConsensusParams(),
        ),
        genesis_time_ms=genesis_time_ms,
        validator_names=(name,),
        domains=(),
    )
