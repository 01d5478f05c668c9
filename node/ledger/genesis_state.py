"""The genesis state: the height-0 UTXO set a genesis document's allocations make, and its app hash."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from node.crypto import ADDRESS_SIZE
from node.ledger.errors import GENESIS_ALLOCATION, GenesisAllocationError
from node.ledger.muhash import MuHash
from node.ledger.state import UtxoEntry, genesis_txid, utxo_element
from node.types.transaction import MAX_SUPPLY, OutPoint


def check_genesis_allocations(allocations: Sequence[tuple[bytes, int]]) -> int:
    """Every allocation pays a 20-byte address 0 < amount <= MAX_SUPPLY, and they sum to at most MAX_SUPPLY."""
    total = 0
    for i, (address, amount) in enumerate(allocations):
        if not isinstance(address, (bytes, bytearray)) or len(address) != ADDRESS_SIZE:
            raise GenesisAllocationError(GENESIS_ALLOCATION, f"allocation {i}: address must be 20 bytes")
        if not isinstance(amount, int) or isinstance(amount, bool) or not 0 < amount <= MAX_SUPPLY:
            raise GenesisAllocationError(GENESIS_ALLOCATION, f"allocation {i}: amount must be in [1, {MAX_SUPPLY}]")
        total += amount
    if total > MAX_SUPPLY:
        raise GenesisAllocationError(GENESIS_ALLOCATION, f"allocations sum to {total}, above MAX_SUPPLY {MAX_SUPPLY}")
    return total


def genesis_utxos(chain_id: str, allocations: Sequence[tuple[bytes, int]]) -> Iterator[tuple[OutPoint, UtxoEntry]]:
    """The height-0 UTXO set: allocation ``i`` at ``genesis_outpoint(chain_id, i)``. Check first."""
    txid = genesis_txid(chain_id)
    for index, (address, amount) in enumerate(allocations):
        yield OutPoint(txid, index), UtxoEntry(bytes(address), amount, 0)


def compute_genesis_muhash(chain_id: str, allocations: Sequence[tuple[bytes, int]]) -> MuHash:
    """MuHash of the genesis UTXO set (allocations checked)."""
    check_genesis_allocations(allocations)
    muhash = MuHash()
    muhash.add_many(utxo_element(op, entry) for op, entry in genesis_utxos(chain_id, allocations))
    muhash.normalize()
    return muhash


def compute_genesis_app_hash(chain_id: str, allocations: Sequence[tuple[bytes, int]]) -> bytes:
    """The app hash at height 0: what a genesis document's allocations hash to."""
    return compute_genesis_muhash(chain_id, allocations).digest()
