"""The REST API's request and response models: the shapes ``GET /openapi.json`` documents.

Each response model lists its fields in the order the node writes them (the
answers are built as dicts in ``node.api.app``, ``node.status`` and
``node.api.views``; a route validates them through its model and answers
the same bytes).  Models whose answers may grow new keys allow extras, so a
key added to an answer is never dropped by validation.  Hex values are
strings, amounts and heights integers, and a null stays null.  A field typed
``X | Absent`` with default None is left out of some answers (never null).

The node routes' models (status, peers, genesis, evidence, mempool, metrics) are in
``node.api.node_models``, the validator-set routes' in ``node.api.validator_models``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema

from node.types.transaction import MAX_TX_BYTES

MAX_BATCH_SUBMIT = 10_000

Absent = SkipJsonSchema[None]
"""The default of a key some answers leave out (routes answer with exclude_unset: a missing key stays missing)."""


class Open(BaseModel):
    """Base of the response models: unknown keys are kept as they are."""

    model_config = ConfigDict(extra="allow")


# ---------------------------------------------------------------------- requests


class SubmitTx(BaseModel):
    """One signed transaction in its canonical binary encoding, hex."""

    model_config = ConfigDict(extra="forbid")
    tx: str = Field(..., max_length=2 * MAX_TX_BYTES, description="hex of the canonical transaction encoding")
    chain_id: str | None = Field(None, description="optional: the chain the client signed for; refused if not ours")


class SubmitBatch(BaseModel):
    """Many signed transactions; each gets its own result."""

    model_config = ConfigDict(extra="forbid")
    txs: list[str] = Field(..., max_length=MAX_BATCH_SUBMIT,
                           description="hex of each transaction's canonical encoding, in order")
    chain_id: str | None = Field(None, description="optional: the chain the client signed for; refused if not ours")


# ---------------------------------------------------------------------- errors


class ErrorDetail(Open):
    """What went wrong: a stable machine code, a message for people, and optional details beside them."""

    code: str = Field(description="stable machine code, for example bad-txns-sig or block-not-found")
    message: str = Field(description="what went wrong and what to do, for people")


class ErrorResponse(BaseModel):
    """Every error answer of the API (any status): ``{"error": {"code", "message", ...details}}``."""

    error: ErrorDetail = Field(description="the error; extra keys (height, txid, problems, ...) are details")


ERROR_STATUS_TEXT = {
    400: "malformed request: bad hex, address, cursor, parameter or body (code bad-request, bad-hex, ...)",
    404: "unknown: no such block, height or transaction here",
    409: "conflict: spends an output a pending transaction already spends, or already committed",
    410: "pruned: below this node's earliest height (it started from a snapshot, or keeps only recent blocks); "
         "ask a node that keeps it",
    413: "too large: request body over the node's limit, or a transaction over the size limit",
    422: "invalid: the transaction breaks a ledger rule, or was made for another chain",
    503: "unavailable for now, retry: height-not-reached (min_height), catching-up, mempool-full or node-failed",
    504: "wait=commit ran out before the transaction was committed; poll GET /v1/txs/{txid}",
}
ERROR_REF = {"$ref": "#/components/schemas/ErrorResponse"}


def error_responses(*statuses: int, json_ref: bool = False) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` entries of a route's errors, plus ``default`` (any other error, in the same shape).

    ``json_ref``: name the error schema by reference under application/json (for a route whose success
    answer is not JSON, where FastAPI would file a model under that media type).
    """
    def entry(description: str) -> dict[str, Any]:
        if json_ref:
            return {"description": description, "content": {"application/json": {"schema": ERROR_REF}}}
        return {"description": description, "model": ErrorResponse}
    out: dict[int | str, dict[str, Any]] = {status: entry(ERROR_STATUS_TEXT[status]) for status in statuses}
    out["default"] = entry("any other error (405 method-not-allowed, 500 internal-error): the same error shape")
    return out


# ---------------------------------------------------------------------- shared records


class Amount(Open):
    """An amount both ways: base units, and coins as an exact decimal string."""

    base_units: int = Field(description="the amount in base units")
    coins: str = Field(description="the amount in coins, a decimal string with 8 places")


class TxInputView(Open):
    """One input of a transaction: the output it spends and its signature."""

    prev_txid: str = Field(description="txid (hex) of the transaction whose output is spent")
    prev_index: int = Field(description="index of the spent output in that transaction")
    public_key: str = Field(description="public key (hex) of the spender")
    signature: str = Field(description="signature (hex) over the transaction's signing hash")


class TxOutputView(Open):
    """One output of a transaction."""

    address: str = Field(description="the receiving address")
    amount: int = Field(description="amount in base units")


class TxView(Open):
    """A transaction: its parts and its canonical encoding."""

    txid: str = Field(description="transaction id (hex): hash of the transaction without signatures")
    inputs: list[TxInputView] = Field(description="the outputs it spends")
    outputs: list[TxOutputView] = Field(description="the outputs it creates")
    size: int = Field(description="size of the canonical encoding, bytes")
    hex: str = Field(description="the canonical encoding (hex), signatures included")


class HeaderView(Open):
    """A block header."""

    chain_id: str = Field(description="the chain")
    height: int = Field(description="block height (1 is the first block after genesis)")
    time_ms: int = Field(description="block time (Unix ms, BFT time from the previous commit)")
    prev_hash: str = Field(description="hash (hex) of the previous block")
    tx_root: str = Field(description="Merkle root (hex) over the transactions' wtxids")
    app_hash: str = Field(description="MuHash (hex) of the UTXO set after this block")
    proposer: str = Field(description="address of the validator that proposed the block")
    last_commit_hash: str = Field(description="hash (hex) of the previous block's commit")
    validators_hash: str = Field(description="hash (hex) of the validator set that decides this block")
    next_validators_hash: str = Field(description="hash (hex) of the validator set of the next height")
    inputs_hash: str = Field(description="hash (hex) of the block's reconfiguration inputs")
    reconfig_hash: str = Field(description="hash (hex) of the validator state after this block (sets of the next "
                                           "two heights, requests with their approvals)")


class CommitSignatureView(Open):
    """One validator's precommit signature in a commit."""

    validator: str = Field(description="address of the validator")
    time_ms: int = Field(description="the validator's precommit time (Unix ms)")
    signature: str = Field(description="signature (hex) of the precommit")


class CommitView(Open):
    """A commit: the precommit signatures of more than two thirds of the voting power for a block."""

    height: int = Field(description="height of the committed block")
    round: int = Field(description="consensus round it was decided in")
    block_hash: str = Field(description="hash (hex) of the committed block")
    signatures: list[CommitSignatureView] = Field(description="the precommit signatures")
    hex: str = Field(description="the commit's canonical encoding (hex)")


class BlockView(Open):
    """A block with its header, the commit it carries for its parent, and its own commit when known."""

    hash: str = Field(description="block hash (hex): hash of the header")
    height: int = Field(description="block height")
    header: HeaderView = Field(description="the header")
    header_hex: str = Field(description="the header's canonical encoding (hex)")
    tx_count: int = Field(description="number of transactions")
    txids: list[str] = Field(description="the transactions' ids (hex), in block order")
    inputs: list[dict[str, Any]] = Field(description="reconfiguration inputs (approvals, each with its request, "
                                                     "and quits), in block order")
    last_commit: CommitView | None = Field(description="the commit of the previous block carried in this block")
    commit: CommitView | None = Field(description="this block's commit as this node stored it (null if none yet)")
    txs: list[TxView] | Absent = Field(None, description="the transactions; only with txs=true on GET /v1/blocks, "
                                                       "always on the single-block routes")


class MerkleSibling(Open):
    """One step of a Merkle proof."""

    side: Literal["L", "R"] = Field(description="L: the sibling is on the left; R: on the right")
    hash: str = Field(description="the sibling hash (hex)")


class MerkleProofView(Open):
    """Path from a transaction's wtxid (the leaf) to the block's tx_root."""

    index: int = Field(description="leaf position")
    total: int = Field(description="number of leaves")
    siblings: list[MerkleSibling] = Field(description="bottom-up siblings")


# ---------------------------------------------------------------------- validators


class ValidatorView(Open):
    """One validator."""

    name: str = Field(description="its name (in genesis, or in its join request)")
    address: str = Field(description="its address")
    public_key: str = Field(description="its public key (hex)")
    power: int = Field(description="its voting power")
    proposer_priority: int | Absent = Field(None, description="at the next height: its proposer priority (CometBFT's "
                                                              "weighted round robin)")
    since: int | Absent = Field(None, description="at the next two heights: the height its membership began (a "
                                                  "quit names it)")


class Validators(Open):
    """The validator set of one height."""

    height: int = Field(description="the height this set decides")
    validators_hash: str = Field(description="hash (hex) of the set, as in block headers")
    total_power: int = Field(description="sum of the voting powers")
    validators: list[ValidatorView] = Field(description="the validators")


# ---------------------------------------------------------------------- blocks


class BlockRange(Open):
    """Blocks from..to (at most 100), oldest first."""

    height: int = Field(description="the node's committed height")
    from_: int = Field(alias="from", description="first height asked for")
    to: int = Field(description="last height answered for (at most the node's height)")
    blocks: list[BlockView] = Field(description="the blocks; with txs only when txs=true")


# ---------------------------------------------------------------------- transactions


class TxStatus(Open):
    """A transaction this node knows: committed (with its inclusion proof) or pending in the mempool."""

    status: Literal["committed", "pending"] = Field(description="committed, or pending in the mempool")
    txid: str = Field(description="transaction id (hex)")
    height: int | Absent = Field(None, description="committed only: height of its block")
    index: int | Absent = Field(None, description="committed only: its position in the block")
    block_hash: str | Absent = Field(None, description="committed only: hash (hex) of its block")
    tx_root: str | Absent = Field(None, description="committed only: the block's tx_root (hex)")
    wtxid: str | Absent = Field(None, description="committed only: sha256 (hex) of the signed encoding, the leaf")
    proof: MerkleProofView | Absent = Field(None, description="committed only: Merkle proof of wtxid in tx_root")
    fee: int | Absent = Field(None, description="pending only: its fee in base units")
    tx: TxView = Field(description="the transaction")


class TxPending(Open):
    """Accepted into the mempool (202)."""

    txid: str = Field(description="transaction id (hex)")
    status: Literal["pending"] = Field(description="pending")


class TxCommitted(Open):
    """Committed (200): with wait=commit, or when it was already committed."""

    txid: str = Field(description="transaction id (hex)")
    status: Literal["committed"] = Field(description="committed")
    height: int = Field(description="height of its block")
    index: int = Field(description="its position in the block")
    block_hash: str = Field(description="hash (hex) of its block")


class BatchItem(Open):
    """The result of one transaction of a batch; a rejected one carries the error's details too."""

    txid: str | Absent = Field(None, description="transaction id (hex); absent when the item did not decode")
    status: Literal["accepted", "committed", "rejected"] = Field(description="accepted, committed or rejected")
    code: str | Absent = Field(None, description="rejected only: the error code")
    message: str | Absent = Field(None, description="rejected only: the error message")


class BatchResult(Open):
    """One result per submitted transaction, in order."""

    accepted: int = Field(description="number accepted into the mempool")
    rejected: int = Field(description="number not accepted (rejected or already committed)")
    results: list[BatchItem] = Field(description="the results, in submission order")


# ---------------------------------------------------------------------- addresses


class Attestation(Open):
    """A node's signature over a read answer (``node.attestation``): counted with its validator's voting power."""

    validator: str = Field(description="the signing node's public key (hex, 33 bytes)")
    signature: str = Field(description="r||s (hex, 64 bytes) over sha256(tag, chain id, kind, height, address, "
                                       "sha256(answer body))")


class Balance(Open):
    """An address's balance at a height."""

    address: str = Field(description="the address (canonical form)")
    height: int = Field(description="the height of the balance")
    balance: int = Field(description="balance in base units")
    amount: Amount = Field(description="the balance both ways")
    attestation: Attestation | None = Field(None, description="with attest=true: this node's signed word for it")


class AddressBalance(Open):
    """One address's balance in a ``Balances`` answer."""

    address: str = Field(description="the address (canonical form)")
    balance: int = Field(description="balance in base units")
    amount: Amount = Field(description="the balance both ways")


class Balances(Open):
    """The balances of many addresses at one height."""

    height: int = Field(description="the height of every balance")
    balances: list[AddressBalance] = Field(description="one per address asked, in the order asked")


class UtxoView(Open):
    """One unspent output."""

    txid: str = Field(description="txid (hex) of the transaction that created it")
    index: int = Field(description="its index in that transaction")
    address: str = Field(description="its address")
    amount: int = Field(description="amount in base units")
    height: int = Field(description="height of the block that created it")


class Utxos(Open):
    """A page of an address's unspent outputs."""

    address: str = Field(description="the address (canonical form)")
    height: int = Field(description="the node's committed height")
    utxos: list[UtxoView] = Field(description="the outputs, by outpoint")
    next: str | None = Field(description="cursor for the next page (after=txid:index), null on the last page")
    attestation: Attestation | None = Field(None, description="with attest=true: this node's signed word for the page")


class HistoryItem(Open):
    """One transaction that touched an address."""

    height: int = Field(description="height of its block")
    index: int = Field(description="its position in the block")
    txid: str = Field(description="transaction id (hex)")
    kind: Literal["genesis", "fee", "tx"] = Field(description="genesis allocation, fee output, or transaction")
    time_ms: int = Field(description="its block's time (the genesis time at height 0), ms since the Unix epoch")
    received: int = Field(description="base units it paid to the address")
    sent: int = Field(description="base units of the address's outputs it spent")
    net: int = Field(description="received - sent: negative when money left the address")
    fee: int = Field(description="the transaction's fee (inputs - outputs); 0 for genesis and fee outputs")
    counterparties: list[str] = Field(description="the other addresses: the recipients of money sent, the owners "
                                                  "of the outputs spent for money received")


class History(Open):
    """A page of the transactions that touched an address, newest first."""

    address: str = Field(description="the address (canonical form)")
    height: int = Field(description="the node's committed height")
    txs: list[HistoryItem] = Field(description="the transactions")
    next: str | None = Field(description="cursor for the next page (before=height:index), null on the last page")
