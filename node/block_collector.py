"""Blocks collected while a snapshot is fetched, so the node does not start a transfer's length behind.

State sync takes a snapshot at height H; while its chunks arrive the chain
goes on.  The collector asks the peers for the blocks after H, batch by
batch on the block-sync channel, and keeps each batch as it came
(``statesync/blocks/<first height>``), bounded in blocks and bytes.  Nothing
here is trusted: at start the node's block sync applies the files through its
own path (``BlockSync.apply_collected``), which checks every certificate as
for blocks from a peer, and deletes them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path

from node.encoding import DecodeError
from node.p2p.reactor import PeerReactor
from node.p2p.wire import decode_block_batch
from node.types.block import Block
from node.types.commit import Commit

log = logging.getLogger("ledger.statesync")

MAX_BLOCKS = 20_000
"""Blocks kept at most (block sync fetches the rest once the node runs)."""
MAX_BYTES = 256 * 1024 * 1024
"""Bytes of batches kept at most."""
BATCH = 50
"""Blocks asked of a peer in one request (block sync's batch)."""
IDLE_S = 0.5
"""Pause when no peer is ahead of what was collected."""


class BlockCollector:
    """Collects the certified-looking blocks after ``height`` from the peers of ``reactor`` into ``folder``."""

    def __init__(self, reactor: PeerReactor, folder: Path, height: int):
        self.reactor = reactor
        self.folder = Path(folder)
        self.next = height + 1
        """The next height to collect."""
        self.blocks = 0
        self.bytes = 0

    async def run(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        for stale in self.folder.iterdir():  # from an earlier transfer at another height
            stale.unlink(missing_ok=True)
        while self.blocks < MAX_BLOCKS and self.bytes < MAX_BYTES:
            ahead = [link for link in self.reactor.links if link.up and link.height >= self.next
                     and link.earliest <= self.next]
            if not ahead:
                await asyncio.sleep(IDLE_S)
                continue
            link = max(ahead, key=lambda link: link.height)
            end = min(link.height, self.next + BATCH - 1)
            body = await self.reactor.request_blocks(link, self.next, end)
            try:
                items = decode_block_batch(body) if body else []
            except DecodeError:
                items = []
            heights = [block.height for block, _ in items]
            if not items or heights != list(range(self.next, self.next + len(items))):
                await asyncio.sleep(IDLE_S)  # a peer that does not serve what it announced: another try later
                continue
            path = self.folder / f"{self.next:020d}"
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_bytes(body or b"")
            tmp.replace(path)
            self.next += len(items)
            self.blocks += len(items)
            self.bytes += len(body or b"")
        log.info("state sync: collected blocks up to height %d; block sync takes it from there", self.next - 1)


def read_collected(folder: Path) -> Iterator[tuple[Path, list[tuple[Block, Commit]]]]:
    """The collected batches in height order, decoded one at a time (a file that does not decode is skipped)."""
    folder = Path(folder)
    if not folder.is_dir():
        return
    for path in sorted(p for p in folder.iterdir() if not p.name.endswith(".tmp")):
        try:
            items = decode_block_batch(path.read_bytes())
        except (DecodeError, OSError) as exc:
            log.warning("collected blocks %s do not decode (%s); block sync fetches them again", path.name, exc)
            continue
        yield path, items
