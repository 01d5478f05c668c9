"""What the consensus driver holds for the height it is at, and what it answers about it.

``HeightState`` is the base of ``ConsensusDriver`` (``node.consensus.driver``):
the constructor and its callbacks, the state of one height (the round
machine's ``RoundState``, the ``VoteKeeper``, the accepted proposals and the
values they carry, what is known to be valid, messages buffered for the next
height, this node's own messages, the decision), the read-only views the
caller and the relay use, and the two things every part of the driver leans
on: a value's id and validity, each worked out once, and the write-ahead log.
The door for messages is ``node.consensus.intake``; the rules that turn all
this into round-machine inputs, and the restart, are the driver itself.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from node.consensus.actions import ConsensusError, Decide
from node.consensus.messages import Proposal, Vote, VoteType
from node.consensus.round_machine import RoundState, Step, Timeout, TimeoutParams, restore_lock
from node.consensus.signer import ConsensusSigner
from node.consensus.vote_keeper import Evidence, VoteKeeper
from node.consensus.wal import ConsensusWAL
from node.types.commit import Commit, CommitSig
from node.types.validators import ValidatorSet

log = logging.getLogger("ledger.consensus")


class HeightState:
    """The driver's state at one height and the views over it; no rules, no I/O."""

    def __init__(self, *, chain_id: str, validators: ValidatorSet, signer: ConsensusSigner | None,
                 params: TimeoutParams, is_valid: Callable[[int, bytes], bool], value_id: Callable[[bytes], bytes],
                 get_value: Callable[[int, int], bytes], now_ms: Callable[[], int],
                 wal: ConsensusWAL | None = None, value_time: Callable[[bytes], int] | None = None,
                 validators_of: Callable[[int], ValidatorSet] | None = None):
        """``now_ms`` is this node's clock (Unix ms) for the times its votes carry; ``value_time`` gives the
        time a value (block) carries, so a precommit for it is dated later (None: values carry no time);
        ``validators_of(h)`` is the set of height h when it changes from height to height (None: it does not,
        ``validators`` decides every height)."""
        if signer is not None and signer.chain_id != chain_id:
            raise ConsensusError("signer-chain-mismatch", "the signer signs for another chain")
        self.chain_id = chain_id
        self._validators = validators
        self._validators_of = validators_of
        self._own_signer = signer
        """This node's signer; it signs at the heights whose set has its key (``_signer`` is then this)."""
        self._signer = signer if signer is not None and signer.address in validators else None
        self._params = params
        self._is_valid_fn = is_valid
        self._value_id = value_id
        self._get_value = get_value
        self._wal = wal
        self._now_ms = now_ms
        self._value_time = value_time
        self._height = 0
        self._started = False
        self._replaying = False
        self._evidence: list[Evidence] = []
        self._future: dict[bytes, list[Proposal | Vote]] = {}
        self._reset_height(0)

    # ------------------------------------------------------------------ state

    def _use_validators(self, validators: ValidatorSet) -> None:
        """The set of the height about to start: this node signs at it only if its key is a member."""
        self._validators = validators
        signer = self._own_signer
        self._signer = signer if signer is not None and signer.address in validators else None

    def validators_for(self, height: int) -> ValidatorSet | None:
        """The set of ``height`` as far as this node knows it: this height's, the static set when it never
        changes, else ``validators_of(height)`` (None when that height's set is not known yet)."""
        if height == self._height or self._validators_of is None:
            return self._validators
        try:
            return self._validators_of(height)
        except Exception:  # noqa: BLE001  (a height too far ahead: unknown, not an error)
            return None

    def _next_validators(self) -> ValidatorSet:
        """The set of the next height (whose messages may be buffered)."""
        if self._validators_of is None or not self._started:
            return self._validators
        try:
            return self._validators_of(self._height + 1)
        except Exception:  # noqa: BLE001  (not known yet: keep only what this height's members send)
            return self._validators

    def _reset_height(self, height: int) -> None:
        self._height = height
        self._state = RoundState(height)
        self._keeper = VoteKeeper(self._validators, height)
        self._proposals: dict[int, Proposal] = {}
        self._extra_proposals: dict[tuple[int, bytes], Proposal] = {}
        self._values: dict[bytes, bytes] = {}
        self._validity: dict[bytes, bool] = {}
        self._future_rounds: dict[bytes, set[int]] = {}
        self._own: list[Proposal | Vote] = []
        self._replay_own_proposals: dict[int, Proposal] = {}
        self._certified: dict[tuple[int, bytes], dict[bytes, CommitSig]] = {}
        self._decided: Decide | None = None

    @property
    def address(self) -> bytes | None:
        """This node's validator address (None for a non-validator)."""
        return None if self._signer is None else self._signer.address

    @property
    def validators(self) -> ValidatorSet:
        return self._validators

    @property
    def height(self) -> int:
        return self._height

    @property
    def round(self) -> int:
        return self._state.round

    @property
    def step(self) -> Step:
        return self._state.step

    @property
    def locked_round(self) -> int:
        return self._state.locked_round

    @property
    def locked_value(self) -> bytes | None:
        """Id of the locked value, or None."""
        return self._state.locked_value

    @property
    def valid_round(self) -> int:
        return self._state.valid_round

    @property
    def round_state(self) -> RoundState:
        return self._state

    @property
    def evidence(self) -> list[Evidence]:
        """Equivocations seen (most recent ``MAX_EVIDENCE_KEPT``)."""
        return list(self._evidence)

    @property
    def decision(self) -> Decide | None:
        """The decision at the current height, once there is one."""
        return self._decided

    @property
    def commit_complete(self) -> bool:
        """Decided, and every validator's precommit for the decided block is in (no point waiting for more)."""
        commit = self.commit_for_decided()
        return commit is not None and len(commit.signatures) == len(self._validators)

    def commit_for_decided(self) -> Commit | None:
        """All precommits for the decided block received so far, or None before a decision."""
        if self._decided is None:
            return None
        return self._build_commit(self._decided.round, self._decided.block_hash)

    def _build_commit(self, round_: int, value_id: bytes) -> Commit:
        """Counted precommits for (round, value), plus any from a verified certificate."""
        sigs = dict(self._certified.get((round_, value_id), {}))
        for vote in self._keeper.precommits_for(round_, value_id):
            sigs[vote.validator] = CommitSig(vote.validator, vote.time_ms, vote.signature)
        return Commit(self._height, round_, value_id, tuple(sigs[v] for v in sorted(sigs)))

    def proposal_for(self, block_hash: bytes) -> Proposal | None:
        """An accepted proposal of this height carrying ``block_hash``."""
        for p in self._proposals.values():
            if p.block_hash == block_hash:
                return p
        for (_, h), p in self._extra_proposals.items():
            if h == block_hash:
                return p
        return None

    # ------------------------------------------------------------------ what the relay asks

    @property
    def started(self) -> bool:
        """True once ``start_height`` has been called."""
        return self._started

    def proposals_in(self, round_: int) -> list[Proposal]:
        """The proposals accepted for ``round_`` of this height (a second one only with a quorum behind it)."""
        out = [self._proposals[round_]] if round_ in self._proposals else []
        out.extend(p for (r, _), p in self._extra_proposals.items() if r == round_)
        return out

    def votes_in(self, round_: int, vote_type: VoteType) -> list[Vote]:
        """Every counted vote of one round and type (an equivocator's conflicting ones included)."""
        return self._keeper.counted_votes(round_, vote_type)

    def rounds_held(self) -> list[int]:
        """Rounds of this height for which a proposal or a vote is held, ascending."""
        return sorted(set(self._keeper.rounds()) | set(self._proposals) | {r for r, _ in self._extra_proposals})

    def quorum_values(self) -> set[bytes]:
        """Values with a polka or precommits from more than 2/3 of the power in some round of this height."""
        return self._keeper.quorum_values()

    def first_votes_in(self, round_: int, vote_type: VoteType) -> list[Vote]:
        """Each validator's first vote of one round and type (the one its "anything" counts use)."""
        return self._keeper.votes(round_, vote_type)

    def precommit_quorum_rounds(self) -> list[int]:
        """Rounds with precommits from more than 2/3 of the power for one value."""
        return [r for r, _ in self._keeper.precommit_quorums()]

    def holds(self, message: Proposal | Vote) -> bool:
        """True if the driver kept ``message``: counted, stored, or buffered for the next height."""
        if message.height == self._height + 1:
            sender = message.proposer if isinstance(message, Proposal) else message.validator
            return message in self._future.get(sender, ())
        if message.height != self._height:
            return False
        if isinstance(message, Vote):
            return self._keeper.is_counted(message)  # a held vote may be evicted: not kept for good
        return any(p == message for p in self.proposals_in(message.round))

    def can_still_matter(self, message: Proposal | Vote) -> bool:
        """False for a message that nothing at this node will ever use again: an earlier height, or a
        proposal or prevote of a height already decided (only late precommits still count)."""
        if message.height < self._height:
            return False
        if message.height == self._height and self._decided is not None:
            return isinstance(message, Vote) and message.vote_type == VoteType.PRECOMMIT
        return True

    # ------------------------------------------------------------------ values

    def _id_of(self, value: bytes) -> bytes | None:
        """``value_id(value)``, or None for bytes the ledger cannot even decode (a Byzantine proposal)."""
        try:
            return self._value_id(value)
        except Exception as exc:  # noqa: BLE001  (injected callback on untrusted bytes: any failure is "not a block")
            log.debug("undecodable proposal value: %r", exc)
            return None

    def _is_valid(self, value_id: bytes) -> bool:
        """valid(v), computed at most once per block hash (it executes the block).

        A callback that raises is taken as "invalid": the bytes came from the network, and one malformed
        proposal must not stop this node's consensus.
        """
        known = self._validity.get(value_id)
        if known is None:
            value = self._values.get(value_id)
            try:
                known = value is not None and bool(self._is_valid_fn(self._height, value))
            except Exception as exc:  # noqa: BLE001  (injected callback on network bytes: raising means invalid)
                log.warning("is_valid raised on block %s at height %d: %r", value_id.hex(), self._height, exc)
                known = False
            self._validity[value_id] = known
        return known

    def _has_proposal(self, round_: int, value_id: bytes) -> bool:
        p = self._proposals.get(round_)
        return (p is not None and p.block_hash == value_id) or (round_, value_id) in self._extra_proposals

    # ------------------------------------------------------------------ durability: the log and the signer

    def _log(self, entry: Proposal | Vote | Timeout) -> None:
        if self._wal is not None and not self._replaying:
            self._wal.append(entry)

    def _make_inputs_durable(self) -> None:
        """Sync what the log holds before the signer signs: after a crash the replay then reaches the same
        proposal or vote, which the signer hands back, instead of a different one it must refuse.

        The driver's only sync of the log.  Syncing after every input that produced an action as well (a
        timer, a decision, this node's vote already durable in the signer's log) cost four more fsyncs a
        height on the event loop (six in all, measured with strace on a 4-validator devnet), none of which a
        restart needs."""
        if self._wal is not None and not self._replaying:
            self._wal.sync()

    def _held(self, kind: type, vote_type: VoteType | None, round_: int):
        """The proposal (``kind`` Proposal) or vote of ``vote_type`` the signer holds for ``round_`` of this
        height, or None."""
        if self._signer is None:
            return None
        for message in self._signer.signed_messages(self._height):
            if isinstance(message, kind) and message.round == round_ \
                    and (vote_type is None or (isinstance(message, Vote) and message.vote_type == vote_type)):
                return message
        return None

    def _restore_signer_lock(self) -> None:
        lock = None if self._signer is None else self._signer.last_locked
        if lock is not None and lock.height == self._height and self._state.step != Step.COMMIT:
            self._state = restore_lock(self._state, lock.round, lock.block_hash)
