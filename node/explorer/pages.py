"""What the explorer's chain pages show, read from the store: home, block and validators.

Pure functions of the store (and the numbers the node passes in): no HTML
here, no request.  Every read is an index lookup or a bounded walk over the
newest blocks; nothing iterates the UTXO set.  Block summaries (time, tx
count, proposer) are read from a block's bytes without decoding its
transactions and kept in a bounded ``SummaryCache``: blocks never change.
"""

from __future__ import annotations

from dataclasses import dataclass

from node.api.views import header_json, reconfig_input_json
from node.crypto import encode_address
from node.encoding import DecodeError, Reader
from node.ledger.store import Store
from node.types.block import MAX_BLOCK_TXS_DECODE, Header
from node.types.commit import Commit
from node.types.transaction import Transaction
from node.types.validators import ValidatorSet

LATEST_BLOCKS = 20
"""Rows of the home page's table of the latest blocks."""
RATE_WINDOW_MS = 300_000
"""The home page's tx/s and block interval cover the blocks of the last five minutes before the tip..."""
RATE_WINDOW_BLOCKS = 300
"""...and at most this many blocks."""
BLOCK_TXS_PAGE = 100
"""Transactions listed per page of a block."""
MAX_CACHED_SUMMARIES = 4096


@dataclass(frozen=True, slots=True)
class BlockSummary:
    """One block as a row of a table."""

    height: int
    """Block height (from 1)."""
    hash: str
    """Block hash, hex."""
    time_ms: int
    """Block time (BFT time), Unix milliseconds."""
    tx_count: int
    """Transactions in the block."""
    proposer: str
    """Address of the validator that proposed it."""


@dataclass(frozen=True, slots=True)
class ValidatorRow:
    """A validator as the explorer lists it."""

    name: str
    """Its name in the set (chosen by whoever configured it: escaped when shown)."""
    address: str
    """Its address."""
    power: int
    """Its voting power."""
    signed: bool | None = None
    """Whether its signature is in the certificate shown beside it (None: no certificate)."""
    priority: int | None = None
    """Its proposer priority at the next height (None for past sets)."""


@dataclass(frozen=True, slots=True)
class ChainRates:
    """Throughput over the newest blocks."""

    blocks: int
    """Blocks the figures cover (at least two, or the figures are None)."""
    span_ms: int
    """Time from the first to the last of those blocks."""
    tx_per_s: float | None
    """Transactions committed per second after the first of those blocks."""
    block_interval_ms: float | None
    """Mean time between consecutive blocks."""


class SummaryCache:
    """Summaries of committed blocks by height, read once from the store (bounded; blocks never change)."""

    def __init__(self, max_entries: int = MAX_CACHED_SUMMARIES):
        self.max_entries = max_entries
        self._by_height: dict[int, BlockSummary] = {}

    def get(self, store: Store, height: int) -> BlockSummary | None:
        """The summary of the block at ``height`` (one store's: a cache serves one node); None where ``store``
        holds no block."""
        found = self._by_height.get(height)
        if found is not None:
            return found
        found = read_block_summary(store, height)
        if found is not None:
            if len(self._by_height) >= self.max_entries:
                self._by_height.clear()
            self._by_height[height] = found
        return found


def read_block_summary(store: Store, height: int) -> BlockSummary | None:
    """A block's summary from its stored bytes: the header and the transaction count that follows it, without
    decoding the transactions (the decoded block when it is one of the newest)."""
    block = store.recent_blocks.get(height)
    if block is not None:
        header, tx_count = block.header, len(block.txs)
    else:
        raw = store.get_block_bytes(height)
        if raw is None:
            return None
        try:
            reader = Reader(raw)
            header = Header.decode(reader.var_bytes(1024))
            tx_count = reader.count(MAX_BLOCK_TXS_DECODE)
        except DecodeError:
            return None
    return BlockSummary(height=header.height, hash=header.hash.hex(), time_ms=header.time_ms, tx_count=tx_count,
                        proposer=encode_address(header.proposer))


def latest_summaries(cache: SummaryCache, store: Store, count: int = LATEST_BLOCKS) -> list[BlockSummary]:
    """The newest ``count`` blocks, newest first (none below the lowest height the store holds)."""
    tip, earliest = store.height, store.earliest_height
    out = []
    for height in range(tip, max(earliest, 1, tip - count + 1) - 1, -1):
        summary = cache.get(store, height)
        if summary is not None:
            out.append(summary)
    return out


def measure_rates(cache: SummaryCache, store: Store) -> ChainRates:
    """Committed tx/s and mean block interval over the blocks of the last ``RATE_WINDOW_MS`` before the tip's
    time (at most ``RATE_WINDOW_BLOCKS``)."""
    tip, earliest = store.height, store.earliest_height
    newest = cache.get(store, tip) if tip >= max(earliest, 1) else None
    if newest is None:
        return ChainRates(0, 0, None, None)
    blocks = [newest]
    for height in range(tip - 1, max(earliest, 1, tip - RATE_WINDOW_BLOCKS + 1) - 1, -1):
        summary = cache.get(store, height)
        if summary is None or newest.time_ms - summary.time_ms > RATE_WINDOW_MS:
            break
        blocks.append(summary)
    span_ms = newest.time_ms - blocks[-1].time_ms
    if len(blocks) < 2 or span_ms <= 0:
        return ChainRates(len(blocks), span_ms, None, None)
    txs = sum(b.tx_count for b in blocks[:-1])
    return ChainRates(len(blocks), span_ms, txs * 1000 / span_ms, span_ms / (len(blocks) - 1))


def signers_of(commit: Commit | None) -> set[bytes]:
    """The addresses whose signatures a certificate holds."""
    return {s.validator for s in commit.signatures} if commit is not None else set()


def validator_rows(validators: ValidatorSet, commit: Commit | None = None) -> list[ValidatorRow]:
    """The members of a set, with whether each signed ``commit`` (when given) and their priorities (next set)."""
    signed = signers_of(commit)
    priorities = validators.priorities
    return [ValidatorRow(name=v.name, address=encode_address(v.address), power=v.power,
                         signed=(v.address in signed) if commit is not None else None,
                         priority=priorities[i] if priorities is not None else None)
            for i, v in enumerate(validators.validators)]


def home_page(store: Store, cache: SummaryCache, chain_id: str, mempool_size: int) -> dict:
    """The home page: the tip, the validators that signed it, throughput and the latest blocks."""
    tip = store.height
    latest = latest_summaries(cache, store)
    validators = store.get_validators(max(tip, 1))
    commit = store.get_commit(tip) if tip > 0 else None
    return {
        "chain_id": chain_id,
        "height": tip,
        "tip": latest[0] if latest and latest[0].height == tip else None,
        "app_hash": (store.app_hash or b"").hex(),
        "mempool_size": mempool_size,
        "validators": validator_rows(validators, commit) if validators is not None else [],
        "names": {encode_address(v.address): v.name for v in validators} if validators is not None else {},
        "signed_power": sum(validators.power_of(a) for a in signers_of(commit)) if validators is not None else 0,
        "total_power": validators.total_power if validators is not None else 0,
        "rates": measure_rates(cache, store),
        "latest": latest,
    }


def tx_row(tx: Transaction) -> dict:
    """A transaction as a row of a block's table: its id, counts, outputs and what it pays in total."""
    return {"txid": tx.txid.hex(), "inputs": len(tx.inputs), "size": tx.size,
            "outputs": [{"address": encode_address(o.address), "amount": o.amount} for o in tx.outputs],
            "total_out": sum(o.amount for o in tx.outputs)}


def commit_rows(commit: Commit | None, validators: ValidatorSet | None) -> list[dict]:
    """The signatures of a certificate with each signer's name and voting power in the set that signed it."""
    if commit is None:
        return []
    out = []
    for sig in commit.signatures:
        member = validators.get(sig.validator) if validators is not None else None
        out.append({"name": member.name if member is not None else "", "address": encode_address(sig.validator),
                    "power": member.power if member is not None else 0, "time_ms": sig.time_ms,
                    "signature": sig.signature.hex()})
    return out


def block_page(store: Store, height: int, page: int = 0) -> dict | None:
    """A block: header, one page of its transactions, its certificate's signatures and the neighbours; None where
    the store holds no block at ``height`` (the caller tells pruned from unknown)."""
    block = store.get_block(height)
    if block is None:
        return None
    commit = store.get_commit(height)
    validators = store.get_validators(height)
    pages = max(1, -(-len(block.txs) // BLOCK_TXS_PAGE))
    page = min(max(page, 0), pages - 1)
    shown = block.txs[page * BLOCK_TXS_PAGE:(page + 1) * BLOCK_TXS_PAGE]
    signed_power = sum(row["power"] for row in commit_rows(commit, validators))
    return {
        "height": height,
        "hash": block.hash.hex(),
        "header": header_json(block.header),
        "proposer_name": _name_of(validators, block.header.proposer),
        "tx_count": len(block.txs),
        "txs": [tx_row(tx) for tx in shown],
        "page": page,
        "pages": pages,
        "first_index": page * BLOCK_TXS_PAGE,
        "inputs": [reconfig_input_json(item) for item in block.inputs],
        "commit": commit,
        "signatures": commit_rows(commit, validators),
        "signed_power": signed_power,
        "total_power": validators.total_power if validators is not None else 0,
        "prev": height - 1 if height > max(store.earliest_height, 1) else None,
        "next": height + 1 if height < store.height else None,
    }


def _name_of(validators: ValidatorSet | None, address: bytes) -> str:
    member = validators.get(address) if validators is not None else None
    return member.name if member is not None else ""


def validators_page(store: Store, evidence: list[dict], changes: list[dict]) -> dict:
    """The set of the next height with names, power and proposer priorities; the evidence the node recorded (the
    records ``GET /v1/evidence`` serves, each with the validator's name); the heights where the set changed
    (``GET /v1/validators/changes``'s list, newest first)."""
    current = store.get_validators(store.height + 1)
    rows = validator_rows(current) if current is not None else []
    names = {row.address: row.name for row in rows}
    records = []
    for record in evidence:
        try:
            address = encode_address(bytes.fromhex(str(record.get("validator", ""))))
        except ValueError:
            address = str(record.get("validator", ""))
        records.append({**record, "address": address, "name": names.get(address, "")})
    return {"height": store.height + 1, "validators": rows,
            "total_power": current.total_power if current is not None else 0,
            "evidence": records, "changes": list(reversed(changes))}
