"""Errors kept as values (a refusal in a batch's results, a peer message that did not decode) are kept without
the frames that raised them (``node.errors.detached``): with them, each one was a reference cycle holding the
frames' locals, which a node frozen between gc refreeze rounds kept for minutes."""

from __future__ import annotations

from node.encoding import DecodeError, Writer
from node.errors import detached
from node.p2p.wire import KIND_VOTE, decode_consensus_batch
from tests.cycles import cycles_left_by


def test_a_peer_message_that_does_not_decode_leaves_no_reference_cycle():
    bad_vote = Writer().u8(KIND_VOTE).var_bytes(b"\x01\x02\x03").getvalue()  # a vote's kind, three bytes of it
    batch = Writer().u32(3).raw(bad_vote).raw(bad_vote).raw(bad_vote).getvalue()

    def decode() -> None:
        out = decode_consensus_batch(batch)
        assert [type(message) for message, _ in out] == [DecodeError] * 3

    assert cycles_left_by(decode) == []


def test_detached_drops_the_tracebacks_of_the_whole_chain():
    def raise_chain() -> ValueError:
        try:
            try:
                raise KeyError("inner")
            except KeyError as inner:
                raise RuntimeError("middle") from inner
        except RuntimeError:
            try:
                raise ValueError("outer")  # raised while handling: its context is the middle one
            except ValueError as outer:
                return outer

    error = raise_chain()
    assert error.__traceback__ is not None and error.__context__ is not None
    assert detached(error) is error
    chain = [error, error.__context__, error.__context__.__cause__]
    assert [type(e) for e in chain] == [ValueError, RuntimeError, KeyError]
    assert all(e.__traceback__ is None for e in chain)


def test_detached_follows_both_the_cause_and_the_context():
    """``raise X from Y`` while handling another error Z: X's cause is Y and its context Z, each with its own
    traceback; both are dropped."""
    try:
        raise IndexError("y")
    except IndexError as raised:
        y = raised
    try:
        try:
            raise KeyError("z")
        except KeyError:
            raise ValueError("x") from y
    except ValueError as caught:
        error = caught
    assert type(error.__cause__) is IndexError and type(error.__context__) is KeyError
    assert error.__cause__.__traceback__ is not None and error.__context__.__traceback__ is not None
    detached(error)
    assert [e.__traceback__ for e in (error, error.__cause__, error.__context__)] == [None, None, None]
