"""Typed rejections of the ledger, each with a stable machine code.

A code never changes once published: clients, the REST layer and tests match
on it.  The message is for people and says what to do.  ``ERROR_CODES`` is
the one table of every code with its meaning, so the REST layer can document
them without repeating the list.

About ``bad-txns-wrong-chain``: every input signs ``H(chain_id || body)``, so
a transaction signed for another chain simply fails signature verification
against this chain's digest (``bad-txns-sig``); from the signature alone no
one can tell *which* chain it was made for.  The code is therefore raised
where a chain id is stated explicitly and differs from ours: by the REST
layer when a submission carries a ``chain_id`` field, and by
``node.ledger.rules.check_chain_id``.
"""

from __future__ import annotations

from node.errors import CodedError

# --------------------------------------------------------------------------- transaction codes

TX_VIN_EMPTY = "bad-txns-vin-empty"
TX_VOUT_EMPTY = "bad-txns-vout-empty"
TX_VOUT_NEGATIVE = "bad-txns-vout-negative"
TX_VOUT_ZERO = "bad-txns-vout-zero"
TX_VOUT_TOOLARGE = "bad-txns-vout-toolarge"
TX_TXOUTTOTAL_TOOLARGE = "bad-txns-txouttotal-toolarge"
TX_INPUTS_DUPLICATE = "bad-txns-inputs-duplicate"
TX_INPUTS_MISSINGORSPENT = "bad-txns-inputs-missingorspent"
TX_IN_BELOWOUT = "bad-txns-in-belowout"
TX_OVERSIZE = "bad-txns-oversize"
TX_MALFORMED = "bad-txns-malformed"
TX_SIG = "bad-txns-sig"
TX_PUBKEY_MISMATCH = "bad-txns-pubkey-mismatch"
TX_BAD_PUBKEY = "bad-txns-bad-pubkey"
TX_WRONG_CHAIN = "bad-txns-wrong-chain"
TX_MEMPOOL_CONFLICT = "txn-mempool-conflict"

# --------------------------------------------------------------------------- block codes

BLK_DOUBLE_SPEND = "bad-blk-double-spend"
BLK_LENGTH = "bad-blk-length"
BLK_SIZE = "bad-blk-size"
BLK_TXROOT = "bad-blk-txroot"
BLK_APPHASH = "bad-blk-apphash"
BLK_CHAIN_ID = "bad-blk-chain-id"
BLK_HEIGHT = "bad-blk-height"
BLK_PREVHASH = "bad-blk-prevhash"
BLK_COMMIT = "bad-blk-commit"
BLK_RESULT = "bad-blk-result"
BLK_TIME = "bad-blk-time"
BLK_VALIDATORS = "bad-blk-validators"
BLK_PROPOSER = "bad-blk-proposer"

# --------------------------------------------------------------------------- reconfiguration codes

RECONFIG_MALFORMED = "reconfig-malformed"
RECONFIG_BAD_SIGNATURE = "reconfig-bad-signature"
RECONFIG_NOT_VALIDATOR = "reconfig-not-validator"
RECONFIG_ALREADY_VALIDATOR = "reconfig-already-validator"
RECONFIG_DUPLICATE_APPROVAL = "reconfig-duplicate-approval"
RECONFIG_EXPIRED = "reconfig-expired"
RECONFIG_EXPIRY_TOO_FAR = "reconfig-expiry-too-far"
RECONFIG_DONE = "reconfig-done"
RECONFIG_STALE = "reconfig-stale"
RECONFIG_BAD_POWER = "reconfig-bad-power"
RECONFIG_TOO_MUCH_CHANGE = "reconfig-too-much-change"
RECONFIG_EMPTY_SET = "reconfig-empty-set"
RECONFIG_TOTAL_OVERFLOW = "reconfig-total-overflow"
RECONFIG_TOO_MANY_PENDING = "reconfig-too-many-pending"
BLK_INPUTS = "bad-blk-inputs"
BLK_NEXT_VALIDATORS = "bad-blk-next-validators"
BLK_RECONFIG_HASH = "bad-blk-reconfig-hash"

# --------------------------------------------------------------------------- snapshot codes

SNAPSHOT_FORMAT = "snapshot-format"
SNAPSHOT_CHUNK = "snapshot-chunk"
SNAPSHOT_HEADER = "snapshot-header"
SNAPSHOT_APP_HASH = "snapshot-app-hash"

# --------------------------------------------------------------------------- genesis and store codes

GENESIS_ALLOCATION = "bad-genesis-allocation"

STORE_NOT_INITIALIZED = "store-not-initialized"
STORE_GENESIS_MISMATCH = "store-genesis-mismatch"
STORE_CORRUPT = "store-corrupt"
STORE_LOCKED = "store-locked"
STORE_RESERVED_KEY = "store-reserved-key"
STORE_FORMAT = "store-format"

ERROR_CODES: dict[str, str] = {
    TX_VIN_EMPTY: "the transaction has no inputs",
    TX_VOUT_EMPTY: "the transaction has no outputs",
    TX_VOUT_NEGATIVE: "an output amount is negative",
    TX_VOUT_ZERO: "an output amount is zero; every output must carry at least one base unit",
    TX_VOUT_TOOLARGE: "an output amount exceeds MAX_SUPPLY",
    TX_TXOUTTOTAL_TOOLARGE: "the sum of the output amounts exceeds MAX_SUPPLY",
    TX_INPUTS_DUPLICATE: "the same output is spent twice by one transaction",
    TX_INPUTS_MISSINGORSPENT: "an input refers to an output that does not exist or is already spent",
    TX_IN_BELOWOUT: "the inputs add up to less than the outputs",
    TX_OVERSIZE: "the transaction is larger than MAX_TX_BYTES or has too many inputs or outputs",
    TX_MALFORMED: "a field has the wrong width or range (hash 32 bytes, key 33, signature 64, address 20, index u32)",
    TX_SIG: "an input's signature does not verify against this chain's signing digest",
    TX_PUBKEY_MISMATCH: "an input's public key does not hash to the address of the output it spends",
    TX_BAD_PUBKEY: "an input's public key is not a 33-byte compressed point on secp256k1",
    TX_WRONG_CHAIN: "the submission names a chain id other than this node's (a transaction signed for "
                    "another chain otherwise shows as bad-txns-sig)",
    TX_MEMPOOL_CONFLICT: "the transaction spends an output already spent by a pending transaction (first seen wins)",
    BLK_DOUBLE_SPEND: "two transactions of one block spend the same output",
    BLK_LENGTH: "the block holds more transactions than the genesis limit",
    BLK_SIZE: "the block's transactions take more bytes than the genesis limit",
    BLK_TXROOT: "the header's tx_root is not the merkle root of the block's wtxids (its transactions' "
                "signed bytes)",
    BLK_APPHASH: "the header's app_hash is not the UTXO set hash after executing the block",
    BLK_CHAIN_ID: "the header names another chain",
    BLK_HEIGHT: "the block is not at the next height",
    BLK_PREVHASH: "the header's prev_hash is not the hash of the current tip",
    BLK_COMMIT: "the commit certificate is for another block or height, or the block carries a last commit "
                "other than the one its header names",
    BLK_RESULT: "the execution result given does not belong to this block or to the current state",
    BLK_TIME: "the block time is not BFT time (the weighted median of the precommit times in the parent "
              "certificate it carries; genesis time + 1 for the first block), or not after its parent's",
    BLK_VALIDATORS: "the header's validators_hash is not the hash of the validator set that decides the block",
    BLK_PROPOSER: "the header's proposer is not a member of the validator set",
    RECONFIG_MALFORMED: "a reconfiguration input has a bad field: a key that is not a point, a power change "
                        "that carries a signature, a name that is too long",
    RECONFIG_BAD_SIGNATURE: "a join is not signed by the joining key, an approval not by its approver, or a quit "
                            "not by the leaving validator (for this chain)",
    RECONFIG_NOT_VALIDATOR: "the approver or the leaving validator is not in the validator set, or a power "
                            "change names a key that is not",
    RECONFIG_ALREADY_VALIDATOR: "the joining key is already a validator (or joins at the next height)",
    RECONFIG_DUPLICATE_APPROVAL: "this validator already approved this request; an approval counts once",
    RECONFIG_EXPIRED: "the request or quit expired (its expiry height has passed); sign a new one",
    RECONFIG_EXPIRY_TOO_FAR: "the expiry height is further ahead than the reconfiguration window allows",
    RECONFIG_DONE: "this request or quit was already applied; a signed reconfiguration record is used once",
    RECONFIG_STALE: "the quit names another membership of its key than the current one (signed before the key "
                    "left and joined again); sign a new one",
    RECONFIG_BAD_POWER: "the power is 0 for a join, above the total power limit, or equal to the current one",
    RECONFIG_TOO_MUCH_CHANGE: "the change would move 1/3 of the voting power or more at one height; split it",
    RECONFIG_EMPTY_SET: "the change would leave the validator set empty",
    RECONFIG_TOTAL_OVERFLOW: "the change would take the total power or the number of validators above its limit",
    RECONFIG_TOO_MANY_PENDING: "this validator already has the most open approvals allowed; wait for some to "
                               "apply or expire",
    BLK_INPUTS: "the block carries more reconfiguration inputs than allowed, or its header's inputs_hash does "
                "not name them",
    BLK_NEXT_VALIDATORS: "the header's next_validators_hash is not the hash of the next height's validator set",
    BLK_RECONFIG_HASH: "the header's reconfig_hash is not the hash of the validator state after the block",
    SNAPSHOT_FORMAT: "a snapshot manifest or file of another format version, or one that does not decode "
                     "(truncated): take or fetch a snapshot made by this release",
    SNAPSHOT_CHUNK: "a snapshot chunk that does not match its manifest (hash, partition, order, count) or does not "
                    "decompress; it is dropped and fetched from another peer",
    SNAPSHOT_HEADER: "a snapshot whose manifest is not about the certified header of its height (block, app "
                     "hash, validator set or state), or of another chain",
    SNAPSHOT_APP_HASH: "the snapshot's outputs do not hash to the certified app hash; nothing of it is kept",
    GENESIS_ALLOCATION: "a genesis allocation has a bad address or amount, or they sum above MAX_SUPPLY",
    STORE_NOT_INITIALIZED: "the store holds no genesis yet; run init first",
    STORE_GENESIS_MISMATCH: "the store was initialized with a different genesis",
    STORE_CORRUPT: "the stored height, app hash and blocks disagree",
    STORE_LOCKED: "the database cannot be opened (missing, or in use by another process)",
    STORE_RESERVED_KEY: "that metadata key belongs to the ledger and cannot be written from outside",
    STORE_FORMAT: "the database was written in another store format than this release reads; start from a "
                  "fresh home",
}


class LedgerError(CodedError):
    """Base of the ledger's typed errors: a stable ``code`` and a human ``message``."""

    code_in_str = True


class TxError(LedgerError):
    """A transaction that breaks a rule."""


class BlockError(LedgerError):
    """A block that breaks a rule.

    When one of its transactions is invalid, ``code`` is that transaction's
    code, ``tx_index`` its position and ``tx_error`` the original error.
    """

    def __init__(self, code: str, message: str, tx_index: int | None = None, tx_error: TxError | None = None):
        super().__init__(code, message)
        self.tx_index = tx_index
        self.tx_error = tx_error


class ReconfigError(LedgerError):
    """A reconfiguration input (approval, quit) that breaks a rule; the validator set is unchanged."""


class SnapshotError(LedgerError):
    """A snapshot (manifest, chunk or file) that does not check out; nothing of it becomes state."""


class GenesisAllocationError(LedgerError):
    """Genesis allocations that cannot form a UTXO set (``bad-genesis-allocation``).

    Not ``genesis.errors.GenesisError``, which refuses a genesis *document*: this one is raised by the
    ledger when it builds the first UTXO set from allocations handed to it."""


class StoreError(LedgerError):
    """The store cannot do what was asked, or found itself inconsistent."""
