"""Transaction signatures: the check, and the cache that makes it once per transaction per node."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable

from node.crypto import verify_signature
from node.ledger.errors import TX_SIG, TxError
from node.types.transaction import Transaction, signing_digest


def verify_transaction_signatures(
    tx: Transaction,
    chain_id: str,
    verify: Callable[[bytes, bytes, bytes], bool] = verify_signature,
) -> None:
    """Every input signs ``signing_digest(tx, chain_id)`` with its key (``bad-txns-sig``)."""
    digest = signing_digest(tx, chain_id)
    checked: set[tuple[bytes, bytes]] = set()
    for i, txin in enumerate(tx.inputs):
        pair = (txin.public_key, txin.signature)
        if pair in checked:
            continue
        if not verify(txin.public_key, digest, txin.signature):
            raise TxError(TX_SIG, f"input {i}: signature does not verify for chain {chain_id!r}; "
                                  "sign with the owner's key and this chain id")
        checked.add(pair)


_VOUCHED = "_signatures_vouched"
"""Where a transaction object remembers the (cache, chain id) that found its signatures valid."""


class SignatureCache:
    """Transactions whose signatures already verified, so each is checked once per node.

    Keyed by the wtxid (SHA-256 of the whole signed encoding: body, keys and
    the exact signatures) followed by the chain id, so a cached success can
    never vouch for different signatures or another chain.  Only successes are
    remembered.  Bounded LRU (the default bound is the default mempool's:
    a transaction is looked up again while it is pending, rarely after);
    safe to share between threads.
    """

    def __init__(self, max_entries: int = 50_000, verify: Callable[[bytes, bytes, bytes], bool] = verify_signature):
        if max_entries < 1:
            raise ValueError("max_entries must be positive")
        self.max_entries = max_entries
        self._verify = verify
        self._ok: OrderedDict[bytes, None] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        """Lookups answered from the cache."""
        self.misses = 0
        """Lookups that ran the signature checks."""

    @staticmethod
    def key(tx: Transaction, chain_id: str) -> bytes:
        """The wtxid (computed once per transaction object, and needed anyway for the block's tx_root) and
        the chain id's bytes: one bytes object per entry, not a tuple, and no hashing beyond the wtxid."""
        return tx.wtxid + chain_id.encode()

    def verify_transaction(self, tx: Transaction, chain_id: str) -> None:
        """Like ``verify_transaction_signatures``, but at most once per (tx, signatures, chain).

        The transaction object also remembers that this cache vouched for it
        on ``chain_id``, so checking one object again (the mempool's, then
        the block's) costs no key hash; that counts as a hit too.
        """
        vouched = tx.__dict__.get(_VOUCHED)
        if vouched is not None and vouched[0] is self and vouched[1] == chain_id:
            with self._lock:
                self.hits += 1
            return
        key = self.key(tx, chain_id)
        with self._lock:
            hit = key in self._ok
            if hit:
                self._ok.move_to_end(key)
                self.hits += 1
            else:
                self.misses += 1
        if not hit:
            verify_transaction_signatures(tx, chain_id, self._verify)
            with self._lock:
                self._ok[key] = None
                if len(self._ok) > self.max_entries:
                    self._ok.popitem(last=False)
        tx.__dict__[_VOUCHED] = (self, chain_id)

    def __len__(self) -> int:
        return len(self._ok)
