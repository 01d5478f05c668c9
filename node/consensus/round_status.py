"""What a node tells its peers about its consensus state, and the decided-block message.

A ``RoundStatus`` says where a node is (height, round, step) and, for the
rounds it reports, which proposals it holds and whose votes it counted for
each value, as bitmasks over the validator set's order.  A peer compares it
with what it holds itself and sends back what is missing (CometBFT's
``PeerRoundState`` and vote bit arrays play this part).  A status is a hint,
not a signed record: a lie in it only costs the liar bandwidth, since every
proposal and vote sent in answer is checked by its receiver.

``Decided`` carries a block with its commit certificate, for a peer still at
that height.
"""

from __future__ import annotations

from dataclasses import dataclass

from node.consensus.messages import MAX_PROPOSAL_VALUE_BYTES, Vote, VoteType
from node.encoding import DecodeError, Reader, Writer
from node.types.commit import Commit
from node.types.hashes import HASH_SIZE

RELAY_PROTOCOL_VERSION = 2
"""Version of the status exchange, consensus batch and block-sync formats; peers with another version are refused.
2: a height announcement carries the earliest height the peer serves."""
MAX_STATUS_ROUNDS = 32
"""Rounds one status may describe."""
MAX_STATUS_VALUES = 64
"""Distinct values (nil included) one status may list per round and vote type."""
MAX_MASK_BYTES = 1250
"""A validator bitmask covers at most 10,000 validators."""
MAX_PROPOSALS_PER_ROUND = 16


@dataclass(frozen=True)
class VotesHeld:
    """What a node holds of one round."""

    round: int
    """u32."""
    proposals: tuple[bytes, ...]
    """Block hashes of the proposals held for this round."""
    prevotes: tuple[tuple[bytes | None, int], ...]
    """(value id or None for nil, bitmask of the validators whose prevote for it is counted)."""
    precommits: tuple[tuple[bytes | None, int], ...]
    """The same for precommits."""

    def has_vote(self, vote: Vote, index: int) -> bool:
        """True if the validator at ``index`` has its ``vote`` counted here (same type, round and value)."""
        pairs = self.prevotes if vote.vote_type == VoteType.PREVOTE else self.precommits
        for value, mask in pairs:
            if value == vote.block_hash:
                return bool(mask >> index & 1)
        return False

    def has_any_vote(self, vote_type: VoteType, index: int) -> bool:
        """True if the validator at ``index`` has some vote of ``vote_type`` counted here, for any value."""
        pairs = self.prevotes if vote_type == VoteType.PREVOTE else self.precommits
        return any(mask >> index & 1 for _, mask in pairs)

    def write(self, w: Writer) -> None:
        w.u32(self.round).u32(len(self.proposals))
        for block_hash in self.proposals:
            w.fixed(block_hash, HASH_SIZE)
        for pairs in (self.prevotes, self.precommits):
            w.u32(len(pairs))
            for value, mask in pairs:
                w.boolean(value is not None)
                if value is not None:
                    w.fixed(value, HASH_SIZE)
                w.var_bytes(mask.to_bytes((mask.bit_length() + 7) // 8, "little"))

    @classmethod
    def read(cls, r: Reader) -> VotesHeld:
        round_ = r.u32()
        proposals = tuple(r.fixed(HASH_SIZE) for _ in range(r.count(MAX_PROPOSALS_PER_ROUND)))
        tallies = []
        for _ in range(2):
            pairs = []
            for _ in range(r.count(MAX_STATUS_VALUES)):
                value = r.fixed(HASH_SIZE) if r.boolean() else None
                raw = r.var_bytes(MAX_MASK_BYTES)
                if raw and raw[-1] == 0:
                    raise DecodeError("validator mask has trailing zero bytes")
                pairs.append((value, int.from_bytes(raw, "little")))
            tallies.append(tuple(pairs))
        return cls(round_, proposals, tallies[0], tallies[1])


@dataclass(frozen=True)
class RoundStatus:
    """A node's consensus position and what it holds, sent to a peer that answers with what it lacks."""

    height: int
    """u64: the height the node is deciding (the last decided one while it waits to start the next)."""
    round: int
    """u32: its current round."""
    step: int
    """Its step (``round_machine.Step`` value); COMMIT once it decided this height."""
    rounds: tuple[VotesHeld, ...]
    """What it holds of the rounds it reports, ascending by round."""

    def held(self, round_: int) -> VotesHeld | None:
        for entry in self.rounds:
            if entry.round == round_:
                return entry
        return None

    def encode(self) -> bytes:
        w = Writer().u8(RELAY_PROTOCOL_VERSION).u64(self.height).u32(self.round).u8(self.step)
        w.u32(len(self.rounds))
        for entry in self.rounds:
            entry.write(w)
        return w.getvalue()

    @classmethod
    def read(cls, r: Reader) -> RoundStatus:
        version = r.u8()
        if version != RELAY_PROTOCOL_VERSION:
            raise DecodeError(f"round status of protocol version {version}; this node speaks "
                              f"{RELAY_PROTOCOL_VERSION}: run the same ledger-node release on every node")
        height, round_, step = r.u64(), r.u32(), r.u8()
        rounds = tuple(VotesHeld.read(r) for _ in range(r.count(MAX_STATUS_ROUNDS)))
        if [e.round for e in rounds] != sorted({e.round for e in rounds}):
            raise DecodeError("status rounds must ascend without repeats")
        return cls(height, round_, step, rounds)

    @classmethod
    def decode(cls, data: bytes) -> RoundStatus:
        r = Reader(data)
        status = cls.read(r)
        r.finish()
        return status


@dataclass(frozen=True)
class Decided:
    """A decided block with its commit certificate, for a peer that is still deciding that height."""

    value: bytes
    """The encoded block."""
    commit: Commit
    """More than 2/3 of the power's precommits for it."""

    @property
    def height(self) -> int:
        return self.commit.height

    def encode(self) -> bytes:
        return Writer().var_bytes(self.value).var_bytes(self.commit.encode()).getvalue()

    @classmethod
    def decode(cls, data: bytes) -> Decided:
        r = Reader(data)
        value = r.var_bytes(MAX_PROPOSAL_VALUE_BYTES)
        commit = Commit.decode(r.var_bytes(MAX_PROPOSAL_VALUE_BYTES))
        r.finish()
        return cls(value, commit)
