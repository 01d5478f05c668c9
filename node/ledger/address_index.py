"""The address index: balances now and after each height, history, and unspent outputs by address.

Keys (see ``store_layout``): ``A`` address -> balance now, ``a`` address ||
height -> balance after that height (written when it changes), ``h`` address
|| height || index -> txid, ``u`` address || outpoint -> UtxoEntry.  The
commit batch writes them in the same batch as the block (``stage_balances``
here for the balances); ``AddressIndexReads`` is the read side ``Store``
inherits.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import plyvel

from node.crypto import ADDRESS_SIZE
from node.ledger.errors import STORE_CORRUPT, StoreError
from node.ledger.state import UtxoEntry
from node.ledger.store_layout import (
    FEE_INDEX,
    OUTPOINT_KEY_SIZE,
    P_ADDR_UTXO,
    P_BALANCE,
    P_BALANCE_AT,
    P_HISTORY,
    U32,
    U64,
    decode_addr_utxo_key,
    decode_history_key,
    outpoint_key,
)
from node.types.transaction import OutPoint


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One appearance of an address in the chain."""

    height: int
    """u64 block height (0: genesis allocation)."""
    index: int
    """u32 position of the transaction in the block; allocation number at height 0; FEE_INDEX for a fee output."""
    txid: bytes
    """32-byte txid; for genesis and fee entries the reserved id of the outpoint that was created."""

    @property
    def kind(self) -> str:
        if self.height == 0:
            return "genesis"
        if self.index == FEE_INDEX:
            return "fee"
        return "tx"


def stage_balances(get: Callable[[bytes], bytes | None], put: Callable[[bytes, bytes], None],
                   delete: Callable[[bytes], None], deltas: dict[bytes, int], height_u64: bytes) -> None:
    """Stage each changed balance: ``A`` (deleted at zero) and ``a`` at the block's height (``height_u64``).

    ``get`` reads the committed balance; ``put``/``delete`` are the batch's.  An address whose
    outputs changed but whose balance did not gets no entry.
    """
    for address, delta in deltas.items():
        if delta == 0:
            continue
        raw = get(P_BALANCE + address)
        balance = (U64.unpack(raw)[0] if raw is not None else 0) + delta
        if balance < 0:
            raise StoreError(STORE_CORRUPT, f"balance of {address.hex()} would go negative")
        if balance:
            put(P_BALANCE + address, U64.pack(balance))
        else:
            delete(P_BALANCE + address)
        put(P_BALANCE_AT + address + height_u64, U64.pack(balance))


def _check_address(address: bytes) -> bytes:
    address = bytes(address)
    if len(address) != ADDRESS_SIZE:
        raise ValueError("address must be 20 bytes")
    return address


class AddressIndexReads:
    """Reads of the address index; mixed into ``Store``, which provides ``_db``."""

    _db: plyvel.DB

    def balance(self, address: bytes) -> int:
        """Sum of the address's unspent outputs now."""
        raw = self._db.get(P_BALANCE + bytes(address))
        return U64.unpack(raw)[0] if raw is not None else 0

    def balance_at(self, address: bytes, height: int) -> int:
        """Balance after block ``height`` (one reverse seek to the last change at or below it)."""
        if height < 0:
            return 0
        prefix = P_BALANCE_AT + _check_address(address)
        stop = prefix + U64.pack(min(height, 2**64 - 1))
        with self._db.iterator(start=prefix, stop=stop, include_stop=True, reverse=True) as it:
            for _key, value in it:
                return U64.unpack(value)[0]
        return 0

    def utxos_of(self, address: bytes, limit: int = 100,
                 after: OutPoint | None = None) -> list[tuple[OutPoint, UtxoEntry]]:
        """Up to ``limit`` unspent outputs of ``address`` in outpoint order, starting after ``after``."""
        prefix = P_ADDR_UTXO + _check_address(address)
        start = prefix + outpoint_key(after) if after is not None else prefix
        stop = prefix + b"\xff" * OUTPOINT_KEY_SIZE
        out: list[tuple[OutPoint, UtxoEntry]] = []
        if limit <= 0:
            return out
        with self._db.iterator(start=start, stop=stop, include_start=after is None, include_stop=True) as it:
            for key, value in it:
                out.append((decode_addr_utxo_key(key), UtxoEntry.decode(value)))
                if len(out) >= limit:
                    break
        return out

    def history_of(self, address: bytes, limit: int = 100,
                   before: tuple[int, int] | None = None) -> list[HistoryEntry]:
        """Up to ``limit`` appearances of ``address``, newest first, strictly before (height, index) ``before``."""
        prefix = P_HISTORY + _check_address(address)
        if before is not None:
            stop, include_stop = prefix + U64.pack(before[0]) + U32.pack(before[1]), False
        else:
            stop, include_stop = prefix + b"\xff" * (U64.size + U32.size), True
        out: list[HistoryEntry] = []
        if limit <= 0:
            return out
        with self._db.iterator(start=prefix, stop=stop, include_stop=include_stop, reverse=True) as it:
            for key, value in it:
                height, index = decode_history_key(key)
                out.append(HistoryEntry(height, index, value))
                if len(out) >= limit:
                    break
        return out
