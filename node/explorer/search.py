"""What the explorer's search box finds: a height, a block hash, a txid or an address.

``resolve_query`` answers with the page to go to, or with why there is none:
an address with a wrong checksum says so (``node.crypto``'s decoding tells
a typo from other mistakes), anything this node does not know is not found.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from node.crypto import ADDRESS_HRP, CryptoError, decode_address
from node.ledger.store import Store
from node.mempool import Mempool

MAX_QUERY = 200
"""Longer queries are refused unread: nothing the box finds is that long."""
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")


@dataclass(frozen=True, slots=True)
class SearchOutcome:
    """Where a search leads: a page, or an explanation with its HTTP status."""

    location: str | None
    """The explorer page the query names (None when there is none)."""
    status: int
    """303 with a location; otherwise 400 (malformed, e.g. a bad address checksum) or 404 (not known here)."""
    code: str
    """A stable code for the outcome (``found``, ``bad-address-checksum``, ``bad-address``, ``not-found``,
    ``empty-query``, ``query-too-long``)."""
    message: str
    """What to tell the person who searched."""


def found(location: str) -> SearchOutcome:
    return SearchOutcome(location, 303, "found", "")


def resolve_query(query: str, store: Store, mempool: Mempool) -> SearchOutcome:
    """The page that ``query`` names: ``/blocks/{height}`` for a height or a block hash, ``/txs/{txid}`` for a
    committed or pending transaction, ``/addresses/{address}`` for a well-formed address (known or not: every
    address has a balance, perhaps zero)."""
    q = query.strip()
    if not q:
        return SearchOutcome(None, 400, "empty-query", "Type a block height, a block hash, a transaction id or an "
                                                       "address.")
    if len(q) > MAX_QUERY:
        return SearchOutcome(None, 400, "query-too-long", f"A query is at most {MAX_QUERY} characters.")
    if q.isascii() and q.isdigit():
        height = int(q)
        if 1 <= height <= store.height:
            return found(f"/blocks/{height}")
        return SearchOutcome(None, 404, "not-found", f"No block at height {height}: this node is at height "
                                                     f"{store.height} (heights start at 1).")
    if _HEX64.fullmatch(q):
        raw = bytes.fromhex(q)
        at = store.get_block_height(raw)
        if at is not None:
            return found(f"/blocks/{at}")
        if store.get_tx_location(raw) is not None or mempool.get(raw) is not None:
            return found(f"/txs/{q.lower()}")
        return SearchOutcome(None, 404, "not-found", "No block or transaction with this hash is known to this node.")
    if q.lower().startswith(ADDRESS_HRP + "1"):
        try:
            decode_address(q)
        except CryptoError as exc:
            if exc.code == "bad-address-checksum":
                return SearchOutcome(None, 400, exc.code, "This address's checksum is wrong: check it for a typo "
                                                          "(a character changed, dropped or swapped).")
            return SearchOutcome(None, 400, exc.code, f"This is not a valid address: {exc.message}.")
        return found(f"/addresses/{q.lower()}")
    return SearchOutcome(None, 404, "not-found", "Nothing matches: search for a block height, a 64-character block "
                                                 f"hash or transaction id, or an address starting with "
                                                 f"{ADDRESS_HRP}1.")
