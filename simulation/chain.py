"""The simulated chain: what a value is, when it is valid, and the validator state each node derives from it.

A value is a 23-byte simulated payload (a 'V' record naming its height),
optionally followed by reconfiguration inputs: a count byte and each input's
encoding (``node.types.reconfig``) with a u32 length.  A value without
inputs is the payload alone, exactly what the static simulator always
decided.

Validity is the payload rule AND the node's own reconfiguration rules:
``apply_inputs(state before h, CHAIN_ID, h, inputs)`` must succeed, the same
function the node's ledger runs.  Each simulated node keeps its own
``ValidatorState`` after every height it decided (``NodeLedger``) and gives
its driver ``validators_of`` from it, as the node wires
``Application.validators_at``: the set of height h is the ``current`` of the
state after h-1 (with proposer priorities), the set of h+1 its ``next``.
"""

from __future__ import annotations

from collections.abc import Sequence

from node.encoding import DecodeError, Reader, Writer
from node.ledger.errors import ReconfigError
from node.ledger.reconfig_rules import MAX_BLOCK_INPUTS, apply_inputs
from node.ledger.validator_state import ValidatorState, genesis_validator_state
from node.types.reconfig import MAX_INPUT_BYTES, ReconfigInput, decode_input
from node.types.validators import ValidatorSet

CHAIN_ID = "sim"
PAYLOAD_SIZE = 23
"""Bytes of the simulated payload: 'V', the height (u64), the round (u32), the node (u16), a nonce (u64)."""


# ---------------------------------------------------------------------------- values


def simulated_value(height: int, round_: int, node: int, nonce: int) -> bytes:
    """A valid payload for ``height`` (a value without reconfiguration inputs)."""
    return b"V" + height.to_bytes(8, "big") + round_.to_bytes(4, "big") + node.to_bytes(2, "big") \
        + nonce.to_bytes(8, "big")


def invalid_value(height: int, nonce: int) -> bytes:
    """A value no height accepts (an 'X' record)."""
    return b"X" + height.to_bytes(8, "big") + nonce.to_bytes(8, "big")


def is_valid_payload(height: int, payload: bytes) -> bool:
    """The simulated ledger rule: a 23-byte 'V' record naming its own height."""
    return len(payload) == PAYLOAD_SIZE and payload[:1] == b"V" and int.from_bytes(payload[1:9], "big") == height


def is_valid_value(height: int, value: bytes) -> bool:
    """The payload rule alone (a value with no inputs, or the static simulator's whole rule)."""
    return is_valid_payload(height, value)


def encode_value(payload: bytes, inputs: Sequence[ReconfigInput] = ()) -> bytes:
    """The payload followed by the inputs (the payload alone when there are none)."""
    if not inputs:
        return payload
    w = Writer().raw(payload).u8(len(inputs))
    for item in inputs:
        w.var_bytes(item.encoded)
    return w.getvalue()


def decode_value(value: bytes) -> tuple[bytes, tuple[ReconfigInput, ...]]:
    """The payload and the inputs of a value; raises ``DecodeError`` for trailing bytes that are not inputs."""
    payload, rest = value[:PAYLOAD_SIZE], value[PAYLOAD_SIZE:]
    if not rest:
        return payload, ()
    r = Reader(rest)
    count = r.u8()
    if not 1 <= count <= MAX_BLOCK_INPUTS:
        raise DecodeError(f"a value carries 1 to {MAX_BLOCK_INPUTS} inputs after its payload, not {count}")
    inputs = tuple(decode_input(r.var_bytes(MAX_INPUT_BYTES)) for _ in range(count))
    r.finish()
    return payload, inputs


# ---------------------------------------------------------------------------- one node's view


class NodeLedger:
    """One node's validator state after each height it decided, derived with the node's own rules."""

    def __init__(self, genesis: ValidatorSet):
        self.states: dict[int, ValidatorState] = {0: genesis_validator_state(genesis)}
        """State after each decided height (0: genesis)."""
        self._after: dict[tuple[int, bytes], ValidatorState | None] = {}
        """(height, value) -> the state after it, or None when invalid: worked out once per value."""

    @property
    def height(self) -> int:
        """The last height whose state is known."""
        return max(self.states)

    def state_before(self, height: int) -> ValidatorState:
        """The state after ``height - 1``; raises ``LookupError`` before that height is decided."""
        state = self.states.get(height - 1)
        if state is None:
            raise LookupError(f"no validator state after height {height - 1}")
        return state

    def validators_of(self, height: int) -> ValidatorSet:
        """The set of ``height``: ``current`` after h-1 (with priorities), else ``next`` after h-2."""
        state = self.states.get(height - 1)
        if state is not None:
            return state.current
        state = self.states.get(height - 2)
        if state is not None:
            return state.next
        raise LookupError(f"the validator set of height {height} is not known yet")

    def state_after(self, height: int, value: bytes) -> ValidatorState | None:
        """The state after a block ``value`` at ``height``, or None when the value is invalid there."""
        key = (height, value)
        if key in self._after:
            return self._after[key]
        state: ValidatorState | None = None
        try:
            payload, inputs = decode_value(value)
            if is_valid_payload(height, payload):
                state = apply_inputs(self.state_before(height), CHAIN_ID, height, inputs)
        except (DecodeError, ReconfigError, LookupError):
            state = None
        if len(self._after) > 256:
            self._after.clear()
        self._after[key] = state
        return state

    def is_valid(self, height: int, value: bytes) -> bool:
        """valid(v) at ``height``: the payload rule and the reconfiguration rules on the state before it."""
        return self.state_after(height, value) is not None

    def commit(self, height: int, value: bytes) -> ValidatorState:
        """Record the decided ``value`` of ``height``; raises ``ValueError`` if it is not valid there."""
        if height != self.height + 1:
            raise ValueError(f"height {height} decided after height {self.height}")
        state = self.state_after(height, value)
        if state is None:
            raise ValueError(f"the decided value of height {height} is invalid on this node's state")
        self.states[height] = state
        self._after = {k: v for k, v in self._after.items() if k[0] > height}
        return state
