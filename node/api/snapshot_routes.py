"""REST route of the snapshots a node offers (``GET /v1/snapshots``); chunks travel on the peer transport."""

from __future__ import annotations

from fastapi import FastAPI
from pydantic import Field

from node.api.models import Open


class SnapshotView(Open):
    """One snapshot of the replicated state this node offers to nodes that join by state sync."""

    height: int = Field(description="the block after which this is the state")
    block_hash: str = Field(description="hash (hex) of that block: its certified header names everything below")
    app_hash: str = Field(description="the block's app hash: MuHash of the UTXO set the chunks hold")
    manifest_hash: str = Field(description="hash (hex) of the manifest")
    chunks: int = Field(description="chunks: a fixed partition of the outpoint space by txid prefix, each "
                                    "partition cut into chunks of at most 65,536 outputs")
    outputs: int = Field(description="unspent outputs in all chunks")
    bytes: int = Field(description="compressed size of all chunks")


class Snapshots(Open):
    """The snapshots this node offers, oldest first (``snapshot_interval``, ``snapshot_keep``)."""

    interval: int = Field(description="this node snapshots every this many heights (0: never)")
    snapshots: list[SnapshotView] = Field(description="the snapshots it holds")


def add_snapshot_routes(app: FastAPI, node, returns) -> None:
    @app.get("/v1/snapshots", tags=["node"], summary="Snapshots this node offers", **returns(Snapshots, 400))
    async def snapshots():
        """The snapshots of the state this node holds, for state sync: height, block and app hash, chunk count,
        outputs and compressed bytes."""
        return {"interval": node.config.snapshot_interval,
                "snapshots": [{"height": info.height, "block_hash": info.manifest.block_hash.hex(),
                               "app_hash": info.manifest.app_hash.hex(), "manifest_hash": info.manifest.hash.hex(),
                               "chunks": len(info.manifest.chunks), "outputs": info.manifest.outputs,
                               "bytes": info.manifest.size} for info in node.snapshots.list()]}
