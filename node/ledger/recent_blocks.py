"""The blocks the last commits wrote, kept decoded in memory beside LevelDB.

Readers of the chain mostly ask for the newest blocks (a client long-polling
``GET /v1/blocks`` for the next height, a peer fetching the tip), and
decoding a stored block means decoding and hashing every transaction in it.
``RecentBlocks`` hands back the ``Block`` object the commit itself wrote: the
same bytes (a commit batch stores only the bytes its certified id covers),
already decoded, with its txids already computed.  Bounded to the last few
heights; older ones are read from LevelDB as before.
"""

from __future__ import annotations

from node.types.block import Block

DEFAULT_MAX_BLOCKS = 4


class RecentBlocks:
    """Committed blocks of the last ``max_blocks`` heights, by height."""

    __slots__ = ("max_blocks", "_blocks")

    def __init__(self, max_blocks: int = DEFAULT_MAX_BLOCKS):
        self.max_blocks = max_blocks
        self._blocks: dict[int, Block] = {}

    def get(self, height: int) -> Block | None:
        """The committed block at ``height`` if it is one of the last few (None says nothing otherwise)."""
        return self._blocks.get(height)

    def add(self, block: Block) -> None:
        """``block`` was just committed at its height (the new tip)."""
        blocks = self._blocks
        blocks[block.height] = block
        for height in [h for h in blocks if h <= block.height - self.max_blocks]:
            del blocks[height]
