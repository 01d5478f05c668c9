"""Trusting a header of any height from the pinned genesis alone, through the certified validator-set changes.

The node's form of what the wallet does over REST (``wallet.validator_walk``):
the set changes only by committed inputs, and every header names the set of
the next height.  Given, for each height c where the set changed, the header
of c-1 with its certificate and the set of c, a node that trusts the genesis
set trusts each next one in turn, and then a header of height H with its
certificate.  A snapshot (``node.ledger.snapshot``) checked against that
header is then as trustworthy as the genesis.
"""

from __future__ import annotations

from dataclasses import dataclass

from node.consensus.certificate import CertificateError, verify_commit
from node.encoding import DecodeError, Reader, Writer
from node.ledger.errors import SNAPSHOT_HEADER, SnapshotError
from node.ledger.validator_state import decode_named_set, encode_named_set
from node.types.block import Header
from node.types.commit import Commit
from node.types.validators import ValidatorSet

MAX_PROOF_STEPS = 100_000


@dataclass(frozen=True)
class SetChange:
    """One step of the walk: the header before a change, its certificate, and the set it names as next."""

    header: Header
    """Header of height ``change - 1`` (its ``next_validators_hash`` names ``validators``)."""
    commit: Commit
    """Its certificate, by the set before the change."""
    validators: ValidatorSet
    """The set from height ``header.height + 1`` on."""

    def write(self, w: Writer) -> Writer:
        return w.var_bytes(self.header.encode()).var_bytes(self.commit.encode()).var_bytes(
            encode_named_set(self.validators))

    @classmethod
    def read(cls, r: Reader) -> SetChange:
        return cls(Header.decode(r.var_bytes(1024)), Commit.decode(r.var_bytes(10_000_000)),
                   decode_named_set(r.var_bytes(10_000_000)))


def set_changes_of(store, upto: int) -> list[SetChange]:
    """The proof a store holding every block from genesis gives for heights up to ``upto``."""
    out = []
    for change in store.validator_change_heights(2, MAX_PROOF_STEPS):
        if change > upto:
            break
        header, commit = store.get_header(change - 1), store.get_commit(change - 1)
        if header is None or commit is None:
            raise SnapshotError(SNAPSHOT_HEADER, f"this node does not hold block {change - 1} (it starts at "
                                                 f"{store.earliest_height}): it cannot prove its snapshots from "
                                                 f"genesis")
        out.append(SetChange(header, commit, store.get_validators(change)))
    return out


def trusted_set_at(chain_id: str, genesis_set: ValidatorSet, changes: list[SetChange], height: int) -> ValidatorSet:
    """The set of ``height``, proven from ``genesis_set`` by ``changes`` (in order); ``snapshot-header`` when a
    step does not check out."""
    validators = genesis_set
    last = 1
    for step in changes:
        h = step.header.height
        if h + 1 <= last or h + 1 > height:
            raise SnapshotError(SNAPSHOT_HEADER, f"the proof's set changes are out of order or beyond {height}")
        check_certified(chain_id, validators, step.header, step.commit)
        if step.validators.hash != step.header.next_validators_hash:
            raise SnapshotError(SNAPSHOT_HEADER, f"the set given for height {h + 1} is not the one header {h} names")
        validators, last = step.validators, h + 1
    return validators


def check_certified(chain_id: str, validators: ValidatorSet, header: Header, commit: Commit) -> None:
    """``header`` is of ``chain_id``, decided by ``validators`` and certified by ``commit``."""
    if header.chain_id != chain_id:
        raise SnapshotError(SNAPSHOT_HEADER, f"header of chain {header.chain_id!r}, not {chain_id!r}")
    if header.validators_hash != validators.hash:
        raise SnapshotError(SNAPSHOT_HEADER, f"header {header.height} names a validator set other than the one "
                                             f"proven for its height (a set change is missing from the proof)")
    try:
        verify_commit(chain_id, validators, commit, header.hash, header.height)
    except CertificateError as exc:
        raise SnapshotError(SNAPSHOT_HEADER, f"the certificate of header {header.height} does not verify: "
                                             f"{exc}") from None


def read_changes(r: Reader) -> list[SetChange]:
    try:
        return [SetChange.read(r) for _ in range(r.count(MAX_PROOF_STEPS))]
    except (DecodeError, ValueError) as exc:
        raise SnapshotError(SNAPSHOT_HEADER, f"the set-change proof does not decode: {exc}") from None
