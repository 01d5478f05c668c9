"""The UTXO state as the transition function sees it.

``StateView`` is all the rules need: look an output up by outpoint.  The
LevelDB ``Store`` is one; ``OverlayState`` layers uncommitted spends and
creations over any view without touching it, which is how a proposed block
is executed before anyone agrees to commit it, and how the mempool sees
committed state plus its pending transactions.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Protocol

from node.crypto import ADDRESS_SIZE, sha256
from node.encoding import DecodeError, Writer
from node.types.transaction import OutPoint

UTXO_ENTRY_BYTES = ADDRESS_SIZE + 8 + 8
_ENTRY = struct.Struct(">20sQQ")
_AMOUNT = struct.Struct(">Q")


@dataclass(frozen=True, slots=True)
class UtxoEntry:
    """One unspent output."""

    address: bytes
    """20-byte account hash allowed to spend it."""
    amount: int
    """Base units (u64), 0 < amount <= MAX_SUPPLY."""
    height: int
    """u64 height of the block that created it; 0 for genesis allocations."""

    def encode(self) -> bytes:
        """36 bytes: address || amount u64 || height u64."""
        return _ENTRY.pack(self.address, self.amount, self.height)

    @classmethod
    def decode(cls, data: bytes) -> UtxoEntry:
        if len(data) != UTXO_ENTRY_BYTES:
            raise DecodeError(f"a UTXO entry is {UTXO_ENTRY_BYTES} bytes, got {len(data)}")
        address, amount, height = _ENTRY.unpack(data)
        return cls(address, amount, height)


class StateView(Protocol):
    """Read access to a UTXO set."""

    def get_utxo(self, outpoint: OutPoint) -> UtxoEntry | None:
        """The unspent output at ``outpoint``, or None if it does not exist or is spent."""
        ...


class ChainView(StateView, Protocol):
    """A UTXO set that is the state after a known block (the Store, MemoryState).

    ``execute_block`` reads the expected height, the parent hash and the
    MuHash state from such a view.
    """

    @property
    def height(self) -> int:
        """Height of the last applied block (0 after genesis)."""
        ...

    @property
    def muhash_state(self) -> bytes:
        """Serialized MuHash of the UTXO set."""
        ...

    def get_block_hash(self, height: int) -> bytes | None:
        """Hash of the block at ``height`` (None for 0 and for unknown heights)."""
        ...


def utxo_element(outpoint: OutPoint, entry: UtxoEntry) -> bytes:
    """The bytes of one UTXO in the app hash: outpoint || address || amount.

    The creation height is left out on purpose: the app hash commits to what
    can be spent, so a snapshot can be checked against a signed header with
    nothing but the outpoints, owners and amounts.
    """
    return outpoint.txid + outpoint.index.to_bytes(4, "big") + entry.address + _AMOUNT.pack(entry.amount)


def genesis_txid(chain_id: str) -> bytes:
    """Reserved txid of the genesis allocations: not the hash of any transaction body."""
    return sha256(Writer().text("genesis").text(chain_id).getvalue())


def genesis_outpoint(chain_id: str, index: int) -> OutPoint:
    """Where genesis allocation number ``index`` lives."""
    return OutPoint(genesis_txid(chain_id), index)


def fee_outpoint(chain_id: str, height: int) -> OutPoint:
    """Where a block's fee output lives: not a real transaction, so it gets a reserved id."""
    return OutPoint(sha256(Writer().text("fee").text(chain_id).u64(height).getvalue()), 0)


class OverlayState:
    """Uncommitted spends and creations on top of a base view, which is never written.

    ``spent`` holds base outputs this overlay removed; ``created`` holds
    outputs it added that are still unspent; an output created and then spent
    here leaves no trace in either but is remembered as spent here, so a
    second spend of it can be told apart from a spend of something unknown.
    """

    __slots__ = ("base", "created", "spent", "_spent_created")

    def __init__(self, base: StateView):
        self.base = base
        self.created: dict[OutPoint, UtxoEntry] = {}
        self.spent: dict[OutPoint, UtxoEntry] = {}
        self._spent_created: set[OutPoint] = set()

    def get_utxo(self, outpoint: OutPoint) -> UtxoEntry | None:
        entry = self.created.get(outpoint)
        if entry is not None:
            return entry
        if outpoint in self.spent or outpoint in self._spent_created:
            return None
        return self.base.get_utxo(outpoint)

    def is_spent_here(self, outpoint: OutPoint) -> bool:
        """True when this overlay (not the base) spent ``outpoint``."""
        return outpoint in self.spent or outpoint in self._spent_created

    def spend(self, outpoint: OutPoint, known: UtxoEntry | None = None) -> UtxoEntry:
        """Remove an unspent output; KeyError if there is none.

        ``known`` is the entry ``get_utxo`` just returned for ``outpoint`` on
        this overlay, when the caller has it: it saves a second base lookup.
        """
        entry = self.created.pop(outpoint, None)
        if entry is not None:
            self._spent_created.add(outpoint)
            return entry
        if outpoint in self.spent or outpoint in self._spent_created:
            raise KeyError(outpoint)
        entry = known if known is not None else self.base.get_utxo(outpoint)
        if entry is None:
            raise KeyError(outpoint)
        self.spent[outpoint] = entry
        return entry

    def create(self, outpoint: OutPoint, entry: UtxoEntry) -> None:
        """Add an unspent output."""
        self.created[outpoint] = entry


def apply_block(utxos: Mapping[OutPoint, UtxoEntry], result) -> dict[OutPoint, UtxoEntry]:
    """A new UTXO dict: ``utxos`` with ``result.spent`` removed and ``result.created`` added.

    Pure (the input is not modified); for tests and in-memory models.  Raises
    KeyError if the result spends something ``utxos`` does not hold.
    """
    after = dict(utxos)
    for outpoint, _entry in result.spent:
        del after[outpoint]
    for outpoint, entry in result.created:
        after[outpoint] = entry
    return after


def iter_elements(utxos: Mapping[OutPoint, UtxoEntry]) -> Iterator[bytes]:
    """The app-hash elements of a whole UTXO set (to rebuild or check a MuHash)."""
    for outpoint, entry in utxos.items():
        yield utxo_element(outpoint, entry)
