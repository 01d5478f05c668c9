"""Merkle tree of a block's wtxids with inclusion proofs (RFC 6962 shape: leaves and
inner nodes hashed under different prefixes, an odd node promoted unchanged),
so a proof cannot pass an inner node off as a leaf."""

from __future__ import annotations

from dataclasses import dataclass

from node.crypto import sha256
from node.types.hashes import HASH_SIZE

EMPTY_ROOT = sha256(b"")


def hash_leaf(data: bytes) -> bytes:
    return sha256(b"\x00" + data)


def hash_node(left: bytes, right: bytes) -> bytes:
    return sha256(b"\x01" + left + right)


@dataclass(frozen=True, slots=True)
class MerkleProof:
    """Path from one leaf to the root."""

    index: int
    """Leaf position."""
    total: int
    """Number of leaves in the tree."""
    siblings: tuple[tuple[str, bytes], ...]
    """Bottom-up (side, hash): side "L" means the sibling is on the left."""

    def to_json(self) -> dict:
        return {"index": self.index, "total": self.total,
                "siblings": [{"side": s, "hash": h.hex()} for s, h in self.siblings]}

    @classmethod
    def from_json(cls, obj: dict) -> MerkleProof:
        sibs = []
        for item in obj["siblings"]:
            if item["side"] not in ("L", "R"):
                raise ValueError("sibling side must be L or R")
            h = bytes.fromhex(item["hash"])
            if len(h) != HASH_SIZE:
                raise ValueError(f"sibling hash must be {HASH_SIZE} bytes")
            sibs.append((item["side"], h))
        return cls(int(obj["index"]), int(obj["total"]), tuple(sibs))


def _levels(leaves: list[bytes]) -> list[list[bytes]]:
    level = [hash_leaf(x) for x in leaves]
    levels = [level]
    while len(level) > 1:
        nxt = [hash_node(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
        levels.append(level)
    return levels


def merkle_root(leaves: list[bytes]) -> bytes:
    if not leaves:
        return EMPTY_ROOT
    return _levels(leaves)[-1][0]


def merkle_proof(leaves: list[bytes], index: int) -> MerkleProof:
    if not 0 <= index < len(leaves):
        raise IndexError("leaf index out of range")
    siblings: list[tuple[str, bytes]] = []
    pos = index
    for level in _levels(leaves)[:-1]:
        if pos % 2 == 1:
            siblings.append(("L", level[pos - 1]))
        elif pos + 1 < len(level):
            siblings.append(("R", level[pos + 1]))
        pos //= 2
    return MerkleProof(index, len(leaves), tuple(siblings))


def verify_merkle_proof(leaf: bytes, proof: MerkleProof, root: bytes) -> bool:
    """True when ``leaf`` sits at ``proof.index`` of a tree whose root is ``root``."""
    if not 0 <= proof.index < proof.total:
        return False
    # Recompute the expected sides from index and total, so a proof cannot lie about its position.
    expected: list[str] = []
    pos, width = proof.index, proof.total
    while width > 1:
        if pos % 2 == 1:
            expected.append("L")
        elif pos + 1 < width:
            expected.append("R")
        pos //= 2
        width = (width + 1) // 2
    if [s for s, _ in proof.siblings] != expected:
        return False
    node = hash_leaf(leaf)
    for side, sibling in proof.siblings:
        node = hash_node(sibling, node) if side == "L" else hash_node(node, sibling)
    return node == root
