"""The records every layer shares, and their canonical encodings.

Modelled on Bitcoin Core's ``primitives/`` and CometBFT's ``types/``: what a
block, a transaction, a commit certificate and a validator set *are*, and
how they are encoded and hashed, with none of the rules that decide whether
one is valid.  The ledger, consensus, p2p, the API, the wallet and genesis
all import these; this package imports only ``node.crypto``,
``node.encoding`` and ``node.errors`` (checked by tests/test_import_rules.py).

- ``hashes``: ``HASH_SIZE``, ``ZERO_HASH``.
- ``transaction``: outpoints, inputs, outputs, the transaction, its txid,
  wtxid, encoding, limits and signing digest.
- ``merkle``: the tx_root's merkle tree and inclusion proofs.
- ``block``: header and block (``block_hash = H(header)``), ``compute_tx_root``.
- ``commit``: the commit certificate (precommit signatures for one block)
  and ``commit_hash``.
- ``validators``: the validator set and its hash.
"""
