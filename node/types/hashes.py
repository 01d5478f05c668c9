"""Hash sizes shared by every record: one SHA-256 digest is 32 bytes."""

from __future__ import annotations

HASH_SIZE = 32
"""Bytes in a SHA-256 digest: block ids, txids, wtxids, merkle roots, app and validator-set hashes."""
ZERO_HASH = bytes(HASH_SIZE)
"""Stands for "none": the parent of block 1, the last commit of block 1."""
