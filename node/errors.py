"""The one shape of a typed error: a stable machine ``code`` and a ``message`` for people.

A code never changes once published: clients, the REST layer, the wallet and
tests match on it.  The message says what went wrong and what to do.  Every
layer (node, genesis, wallet) derives its errors from ``CodedError``, so one
``except CodedError`` sees the code of any of them; this module imports
nothing, so anything may import it.
"""

from __future__ import annotations

from typing import ClassVar, TypeVar


class CodedError(Exception):
    """An error with a stable ``code``, a human ``message`` and optional machine-readable ``details``.

    ``str(error)`` is the message, or ``"code: message"`` for classes that
    set ``code_in_str``.
    """

    code_in_str: ClassVar[bool] = False
    """Whether ``str(error)`` starts with the code."""

    def __init__(self, code: str, message: str, **details: object):
        super().__init__(f"{code}: {message}" if self.code_in_str else message)
        self.code = code
        """Stable machine code, for example ``bad-txns-sig``."""
        self.message = message
        """What went wrong and what to do, for people."""
        self.details = details
        """Extra fields for a machine reader (a REST error body carries them beside code and message)."""


E = TypeVar("E", bound=BaseException)


def detached(error: E) -> E:
    """``error`` without its traceback, or those of the errors it was raised from or while handling; returns it.

    An error kept as a value (a refusal in a batch's results, a peer message that did not decode) would
    otherwise hold the frames that raised and caught it, and the frame holding it holds it back: a reference
    cycle only a full collection frees, with every local of those frames (a whole batch of transactions).  A
    node freezes what the collector tracks between commits, so such cycles stay until the next gc refreeze
    round (``node.gc_policy``)."""
    seen: set[int] = set()
    chain: list[BaseException | None] = [error]
    while chain:
        link = chain.pop()
        if link is None or id(link) in seen:
            continue
        seen.add(id(link))
        link.__traceback__ = None
        chain += [link.__cause__, link.__context__]
    return error
