"""REST routes of transactions, under ``/v1/txs``: look one up, submit one, submit many.

* ``GET /v1/txs/{txid}``: a committed transaction with its block and Merkle proof, or a pending one with its fee;
* ``POST /v1/txs?wait=mempool|commit``: admit one signed transaction to the mempool (and wait for its commit);
* ``POST /v1/txs/batch``: admit up to 10000, each with its own result, ``BATCH_SLICE`` at a time.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Literal, cast

from fastapi import FastAPI, Query
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse

from node.api import models as m
from node.api.models import SubmitBatch, SubmitTx, error_responses
from node.api.views import tx_json
from node.errors import CodedError
from node.stages import CLOCK
from node.types.transaction import Transaction

BATCH_SLICE = 32
"""Transactions of a batch admitted between two turns of the event loop.  Checking one takes 50-130 µs, so a
batch of 10,000 admitted at once held every vote and proposal waiting behind it for about a second; now what
is read meanwhile waits for one slice of each batch in flight.  A slice is checked, journaled (one fsync) and
relayed before the next (``Admission.admit_client_txs``)."""

CATCHING_UP = "node is catching up with its peers; retry shortly or use another node"


def add_tx_routes(app: FastAPI, node, *, guard, api_error, returns, parse_hex, decode_tx_hex, tx_error_status) -> None:
    """Register the ``/v1/txs`` routes on ``app`` for ``node``, with the REST layer's parts: ``guard`` the
    ``min_height`` dependency, ``api_error`` the REST error type (status, code, message), ``returns`` the route
    arguments of a JSON answer, ``parse_hex`` and ``decode_tx_hex`` its parsers (400 or 413 on bad input) and
    ``tx_error_status`` (the HTTP status of a refused transaction)."""
    config = node.config

    @app.get("/v1/txs/{txid}", tags=["transactions"], dependencies=[guard], summary="A transaction by id",
             **returns(m.TxStatus, 400, 404, 503))
    async def get_tx(txid: str):
        """A committed transaction with its block and a Merkle proof of its signed bytes, or a pending one with
        its fee; 404 tx-not-found when this node has neither."""
        raw = parse_hex(txid, "txid", 32)
        location = node.waiters.locate(raw)
        if location is not None:
            block = node.store.get_block(location.height)
            tx = block.txs[location.index]
            # the proof's leaf is the wtxid, sha256 of tx["hex"]: it proves these exact signed bytes
            return {"status": "committed", "txid": txid, "height": location.height, "index": location.index,
                    "block_hash": location.block_hash.hex(), "tx_root": block.header.tx_root.hex(),
                    "wtxid": tx.wtxid.hex(), "proof": block.proof(location.index).to_json(), "tx": tx_json(tx)}
        entry = node.mempool.get(raw)
        if entry is not None:
            return {"status": "pending", "txid": txid, "fee": entry.fee, "tx": tx_json(entry.tx)}
        raise api_error(404, "tx-not-found", f"transaction {txid} is neither pending nor committed here",
                        tx_status="unknown")

    def check_chain(chain_id: str | None) -> None:
        if chain_id is not None and chain_id != node.chain_id:
            raise api_error(422, "bad-txns-wrong-chain",
                            f"transaction was made for chain {chain_id!r}; this node runs {node.chain_id!r}")

    # Submissions answer their dicts without response validation (hot path): the models only document them.
    @app.post("/v1/txs", tags=["transactions"], status_code=202, summary="Submit a transaction",
              responses={202: {"model": m.TxPending, "description": "accepted into the mempool"},
                         200: {"model": m.TxCommitted, "description": "committed (wait=commit, or already)"},
                         **error_responses(400, 409, 413, 422, 503, 504)})
    async def submit_tx(body: SubmitTx, wait: Annotated[Literal["mempool", "commit"], Query(
            description="mempool: answer once admitted (202); commit: once committed (200) or 504")] = "mempool"):
        """Admit one signed transaction (hex of its canonical encoding) to the mempool and relay it."""
        check_chain(body.chain_id)
        tx = decode_tx_hex(body.tx)
        if node.sync.catching_up:
            raise api_error(503, "catching-up", CATCHING_UP)
        with CLOCK.stage("admit_client"):
            outcome: CodedError | bool = node.admission.admit_client_txs([tx])[0]
        if isinstance(outcome, CodedError):
            exc = outcome
            details = exc.details
            if exc.code == "txn-already-committed":
                location = node.waiters.locate(tx.txid)
                if location is not None:
                    return JSONResponse(status_code=200, content={
                        "txid": tx.txid.hex(), "status": "committed", "height": location.height,
                        "index": location.index, "block_hash": location.block_hash.hex()})
            raise api_error(tx_error_status(exc), exc.code, exc.message, **{**details, "txid": tx.txid.hex()})
        if wait == "commit":
            location = await node.waiters.wait_for_commit(tx.txid, config.commit_wait_ms / 1000)
            if location is None:
                raise api_error(504, "commit-timeout", f"not committed within {config.commit_wait_ms} ms; "
                                                       f"poll GET /v1/txs/{tx.txid.hex()}", txid=tx.txid.hex())
            return JSONResponse(status_code=200, content={
                "txid": tx.txid.hex(), "status": "committed", "height": location.height, "index": location.index,
                "block_hash": location.block_hash.hex()})
        return {"txid": tx.txid.hex(), "status": "pending"}

    @app.post("/v1/txs/batch", tags=["transactions"], summary="Submit many transactions",
              responses={200: {"model": m.BatchResult, "description": "one result per transaction"},
                         **error_responses(400, 413, 422, 503)})
    async def submit_batch(body: SubmitBatch):
        """Admit up to 10000 transactions in one request; each gets its own result (accepted, committed or
        rejected with its error), in order. 422 only for a wrong chain_id, 503 while catching up."""
        check_chain(body.chain_id)
        if node.sync.catching_up:
            raise api_error(503, "catching-up", CATCHING_UP)
        results: list[dict] = []
        for start in range(0, len(body.txs), BATCH_SLICE):
            if start:
                await asyncio.sleep(0)  # what arrived meanwhile (a vote, a proposal) is handled between slices
                if node.sync.catching_up:  # began meanwhile: the rest is refused as a whole batch would be
                    results.extend({"status": "rejected", "code": "catching-up", "message": CATCHING_UP}
                                   for _ in body.txs[start:])
                    break
            with CLOCK.stage("admit_client"):
                results.extend(admit_slice(body.txs[start:start + BATCH_SLICE]))
        with CLOCK.stage("admit_client"):
            accepted = sum(1 for result in results if result["status"] == "accepted")
            # Plain JSON values already: answered as they are, without FastAPI's per-item jsonable_encoder pass.
            return JSONResponse({"accepted": accepted, "rejected": len(results) - accepted, "results": results})

    def admit_slice(items: list[str]) -> list[dict]:
        """The results of one slice of a batch, in order; its admitted transactions journaled and relayed."""
        results: list[dict | None] = []
        decoded: list[Transaction] = []
        for item in items:
            try:
                decoded.append(decode_tx_hex(item))
                results.append(None)
            except api_error as exc:
                results.append({"status": "rejected", "code": exc.code, "message": exc.message})
        outcomes = iter(node.admission.admit_client_txs(decoded))
        txs = iter(decoded)
        for i, slot in enumerate(results):
            if slot is not None:
                continue
            tx, outcome = next(txs), next(outcomes)
            if isinstance(outcome, Exception):
                code = getattr(outcome, "code", "rejected")
                if code == "txn-already-committed":
                    results[i] = {"txid": tx.txid.hex(), "status": "committed"}
                else:
                    results[i] = {"txid": tx.txid.hex(), "status": "rejected", "code": code,
                                  "message": getattr(outcome, "message", str(outcome)),
                                  **jsonable_encoder(getattr(outcome, "details", {}))}
            else:
                results[i] = {"txid": tx.txid.hex(), "status": "accepted"}
        return cast(list[dict], results)  # every slot is filled by now
