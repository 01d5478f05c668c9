"""Shared test fixtures for the consensus tests: deterministic keys, sets and drivers."""

from __future__ import annotations

from node.consensus.driver import ConsensusDriver
from node.consensus.messages import Proposal, Vote, VoteType, sign_proposal, sign_vote
from node.consensus.proposer import proposer_for
from node.consensus.round_machine import TimeoutParams
from node.consensus.signer import MemorySigner
from node.consensus.wal import MemoryWAL
from node.crypto import N, address_hash, derive_public_key, sha256
from node.types.validators import Validator, ValidatorSet

CHAIN = "test-chain"
PARAMS = TimeoutParams(propose_ms=1000, prevote_ms=500, precommit_ms=500, delta_ms=100)


def key(i: int) -> bytes:
    return (int.from_bytes(sha256(b"consensus-test-key" + bytes([i])), "big") % (N - 1) + 1).to_bytes(32, "big")


def make_set(powers: list[int]) -> tuple[ValidatorSet, dict[bytes, bytes]]:
    """A validator set with the given powers and a map address -> private key."""
    keys = [key(i) for i in range(len(powers))]
    vs = ValidatorSet(Validator(f"v{i}", derive_public_key(k), p)
                      for i, (k, p) in enumerate(zip(keys, powers, strict=True)))
    return vs, {address_hash(derive_public_key(k)): k for k in keys}


def value(tag: str) -> bytes:
    return b"value:" + tag.encode()


CLOCK_MS = 1_700_000_000_000
"""The fixed clock (Unix ms) of the harness drivers and of the votes the helpers sign."""


def vote(keys: dict[bytes, bytes], address: bytes, vote_type: VoteType, height: int, round_: int,
         block_hash: bytes | None, time_ms: int = CLOCK_MS) -> Vote:
    return sign_vote(CHAIN, keys[address], address, vote_type, height, round_, block_hash, time_ms)


def proposal(vs: ValidatorSet, keys: dict[bytes, bytes], height: int, round_: int, val: bytes,
             pol_round: int = -1) -> Proposal:
    proposer = proposer_for(vs, height, round_)
    return sign_proposal(CHAIN, keys[proposer], proposer, height, round_, pol_round, sha256(val), val)


class Harness:
    """One driver for validator ``me`` of a set, with counters on the injected callbacks."""

    def __init__(self, powers: list[int], me: int | None = 0, valid=lambda h, v: not v.startswith(b"bad"),
                 wal: MemoryWAL | None = None, signer: MemorySigner | None = None):
        self.vs, self.keys = make_set(powers)
        self.addresses = list(self.vs.addresses)
        self.me = None if me is None else self.addresses[me]
        self.valid_calls: list[bytes] = []
        self.built = 0
        self._valid = valid
        if signer is None and self.me is not None:
            signer = MemorySigner(self.keys[self.me], CHAIN)
        self.signer = signer
        self.wal = wal
        self.driver = self.new_driver()

    def new_driver(self) -> ConsensusDriver:
        return ConsensusDriver(chain_id=CHAIN, validators=self.vs, signer=self.signer, params=PARAMS,
                               is_valid=self._is_valid, value_id=sha256, get_value=self._get_value,
                               now_ms=lambda: CLOCK_MS, wal=self.wal)

    def _is_valid(self, height: int, v: bytes) -> bool:
        self.valid_calls.append(v)
        return self._valid(height, v)

    def _get_value(self, height: int, round_: int) -> bytes:
        self.built += 1
        return value(f"built-{height}-{round_}-{self.built}")

    def others(self) -> list[bytes]:
        return [a for a in self.addresses if a != self.me]

    def vote(self, who: bytes, vote_type: VoteType, height: int, round_: int, block_hash: bytes | None) -> Vote:
        return vote(self.keys, who, vote_type, height, round_, block_hash)

    def proposal(self, height: int, round_: int, val: bytes, pol_round: int = -1) -> Proposal:
        return proposal(self.vs, self.keys, height, round_, val, pol_round)

    def proposer_index(self, height: int, round_: int) -> int:
        return self.addresses.index(proposer_for(self.vs, height, round_))
