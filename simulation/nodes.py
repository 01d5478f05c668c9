"""The simulated validators: their keys and signers, the values they propose, and what survives a crash."""

from __future__ import annotations

from typing import TYPE_CHECKING

from node.consensus.driver import ConsensusDriver
from node.consensus.messages import Proposal, Vote, VoteType, sign_proposal, sign_vote
from node.consensus.relay import Relay
from node.consensus.round_machine import TimeoutParams
from node.consensus.signer import MemorySigner, SignerLock
from node.consensus.wal import MemoryWAL
from node.crypto import N as CURVE_ORDER
from node.crypto import address_hash, derive_public_key, sha256
from node.types.commit import Commit
from node.types.validators import ValidatorSet
from simulation.chain import (  # noqa: F401 (re-exported: the values the behaviours forge)
    CHAIN_ID,
    NodeLedger,
    encode_value,
    invalid_value,
    is_valid_value,
    simulated_value,
)

if TYPE_CHECKING:
    from simulation.world import Simulation

SIM_TIMEOUTS = TimeoutParams(propose_ms=200, prevote_ms=100, precommit_ms=100, delta_ms=50)


# ---------------------------------------------------------------------------- keys and signers


def key_for(seed: int, index: int) -> bytes:
    """Validator ``index``'s private key in the run with ``seed``."""
    scalar = int.from_bytes(sha256(b"sim-key" + seed.to_bytes(8, "big") + index.to_bytes(4, "big")), "big")
    return (scalar % (CURVE_ORDER - 1) + 1).to_bytes(32, "big")


class UnguardedSigner:
    """A Byzantine validator's signer: signs anything."""

    def __init__(self, private_key: bytes, chain_id: str):
        self.chain_id = chain_id
        self.private_key = private_key
        self.address = address_hash(derive_public_key(private_key))

    def sign_proposal(self, height: int, round_: int, pol_round: int, block_hash: bytes, value: bytes) -> Proposal:
        return sign_proposal(self.chain_id, self.private_key, self.address, height, round_, pol_round,
                             block_hash, value)

    def sign_vote(self, vote_type: VoteType, height: int, round_: int, block_hash: bytes | None,
                  time_ms: int = 0) -> Vote:
        """Any vote, at any time it is asked for (0, a stopped clock, when none is given)."""
        return sign_vote(self.chain_id, self.private_key, self.address, vote_type, height, round_, block_hash,
                         time_ms)

    @property
    def last_locked(self) -> SignerLock | None:
        return None

    def signed_messages(self, height: int) -> list[Proposal | Vote]:
        """It remembers nothing."""
        return []


# ---------------------------------------------------------------------------- the node


class SimNode:
    """One node: a driver plus what survives a crash (signer, WAL, decided blocks and the validator state).

    Its key is a validator at the heights whose set holds it (its driver signs only there); before it joins
    and after it quits the node follows the chain."""

    def __init__(self, sim: Simulation, index: int, key: bytes, behaviour: str | None, genesis: ValidatorSet):
        self.sim = sim
        self.index = index
        self.behaviour = behaviour
        self.honest = behaviour is None
        self.public_key = derive_public_key(key)
        self.signer = MemorySigner(key, CHAIN_ID) if self.honest else UnguardedSigner(key, CHAIN_ID)
        self.wal = MemoryWAL() if self.honest else None
        self.up = True
        self.epoch = 0
        self.decided: dict[int, tuple[bytes, Proposal | None, Commit]] = {}
        self.decide_times: list[int] = []
        self.nonce = 0
        self.paused_until = 0
        """Virtual time until which the node is paused (it hears nothing; its timers wait)."""
        self.quit_at: int | None = None
        """For the "quits" behaviour: when it goes silent for good."""
        self.crash_on_sign = False
        """Crash right after the next signature, before the message leaves (the "torn" mix)."""
        self.ledger = NodeLedger(genesis)
        """The validator state after each height this node decided (survives a crash: it is the chain's)."""
        self.driver = self.new_driver()
        self.relay = Relay(self.driver, self.decided_at)

    def decided_at(self, height: int) -> tuple[bytes, Commit] | None:
        """The decided block and its certificate at ``height``, for the relay to answer with."""
        entry = self.decided.get(height)
        return None if entry is None else (entry[0], entry[2])

    def _get_value(self, height: int, round_: int) -> bytes:
        """A fresh value: a payload, plus the operators' pending reconfiguration inputs in a run with them."""
        self.nonce += 1
        payload = simulated_value(height, round_, self.index, self.sim.rng.getrandbits(63) ^ self.nonce)
        operator = self.sim.operator
        if operator is None:
            return payload
        return encode_value(payload, operator.inputs_for(self.ledger.state_before(height), height))

    def new_driver(self) -> ConsensusDriver:
        """A fresh driver (at start, and after a restart from the signer and WAL), with the node's wiring:
        the set of each height from this node's own validator state."""
        ledger = self.ledger
        return ConsensusDriver(chain_id=CHAIN_ID, validators=ledger.validators_of(self.next_height),
                               signer=self.signer, params=SIM_TIMEOUTS, is_valid=ledger.is_valid, value_id=sha256,
                               get_value=self._get_value, now_ms=lambda: self.sim.now, wal=self.wal,
                               validators_of=ledger.validators_of)

    @property
    def next_height(self) -> int:
        return len(self.decided) + 1
