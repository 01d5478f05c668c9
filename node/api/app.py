"""The client REST API (routes under /v1); peers talk on the p2p port (``node.p2p``), never here.

Every error is JSON ``{"error": {"code": ..., "message": ...}}`` with the
status that fits: 400 malformed, 404 unknown, 409 conflict, 413 too large,
422 invalid transaction, 503 mempool full / catching up / height not reached,
504 commit wait ran out.  A client mistake never becomes a 500.  Nothing here
can change the node's keys or configuration.
"""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from node import release
from node.api import models as m
from node.api import node_models as nm
from node.api.address_routes import MAX_PAGE, add_address_routes
from node.api.docs import add_local_docs
from node.api.event_routes import add_event_routes
from node.api.models import error_responses
from node.api.snapshot_routes import add_snapshot_routes
from node.api.tx_routes import add_tx_routes
from node.api.validator_routes import add_validator_routes
from node.api.views import block_json, block_summary_json
from node.attestation import attestation_json, sign_attestation
from node.crypto import CryptoError, SigningKey, decode_address
from node.encoding import DecodeError
from node.errors import CodedError
from node.explorer import add_explorer
from node.gc_policy import SURVIVOR_FREEZER
from node.ledger.errors import ERROR_CODES
from node.mempool import AlreadyCommitted, MempoolConflict, MempoolError, MempoolFull
from node.status import node_status
from node.types.transaction import MAX_TX_BYTES, Transaction
from node.waiters import WaitRefused

log = logging.getLogger("ledger.api")

MAX_BLOCK_RANGE = 100


class ApiError(CodedError):
    """A client-facing error with a stable code and the HTTP status it is answered with."""

    def __init__(self, status: int, code: str, message: str, **details: object):
        super().__init__(code, message, **details)
        self.status = status


def error_response(status: int, code: str, message: str, **details: object) -> JSONResponse:
    SURVIVOR_FREEZER.expect_garbage()  # what raised this left cycles: the next commit collects them
    return JSONResponse(status_code=status, content={"error": {"code": code, "message": message, **details}})


def returns(model: type, *errors: int) -> dict:
    """Route arguments of a JSON answer built as a dict: validated through ``model`` (whose field order is the
    dict's, so the answer keeps its keys and order; keys a dict leaves out stay out) and written by
    ``JSONResponse`` (json.dumps, as without a model: the same bytes), with the errors the route can give."""
    return {"response_model": model, "response_class": JSONResponse, "response_model_exclude_unset": True,
            "responses": error_responses(*errors)}


def parse_hex(value: str, what: str, size: int | None = None) -> bytes:
    try:
        raw = bytes.fromhex(value)
    except (ValueError, TypeError):
        raise ApiError(400, "bad-hex", f"{what} must be hex") from None
    if size is not None and len(raw) != size:
        raise ApiError(400, "bad-hex", f"{what} must be {size} bytes ({2 * size} hex characters)")
    return raw


def parse_address(value: str) -> bytes:
    try:
        return decode_address(value)
    except CryptoError as exc:
        raise ApiError(400, exc.code, exc.message) from None


def decode_tx_hex(value: str) -> Transaction:
    raw = parse_hex(value, "tx")
    if len(raw) > MAX_TX_BYTES:
        raise ApiError(413, "bad-txns-oversize", f"transaction is {len(raw)} bytes, limit {MAX_TX_BYTES}")
    try:
        return Transaction.decode(raw)
    except DecodeError as exc:
        raise ApiError(400, "bad-txns-malformed", f"not a canonical transaction encoding: {exc}") from None


def tx_error_status(exc: Exception) -> int:
    """The HTTP status of a refused transaction: 503 when the mempool is full (retry later), 409 when it
    conflicts with a pending transaction or is already committed, 400 for another mempool refusal, 422 when
    it breaks a ledger rule."""
    if isinstance(exc, MempoolFull):
        return 503
    if isinstance(exc, (MempoolConflict, AlreadyCommitted)):
        return 409
    if isinstance(exc, MempoolError):
        return 400
    return 422


def create_app(node) -> FastAPI:
    """The FastAPI application serving ``node``."""
    app = FastAPI(
        title="ledger-node",
        version=release(),
        description="REST API of a ledger node. Errors are JSON {error: {code, message}}; "
                    "error codes: " + ", ".join(sorted(ERROR_CODES)),
        docs_url=None,
        redoc_url=None,
    )
    add_local_docs(app)
    config = node.config
    attester: list[SigningKey] = []

    def sign_answer(kind: str, height: int, account: bytes, body: bytes) -> dict:
        """This node's signed word for an answer (``node.attestation``), with the key it signs votes with."""
        if not attester:
            attester.append(SigningKey(node.key.private_key))
        return attestation_json(sign_attestation(attester[0], node.chain_id, kind, height, account, body))

    # ------------------------------------------------------------------ errors

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError):
        return error_response(exc.status, exc.code, exc.message, **exc.details)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, exc: RequestValidationError):
        problems = [{"loc": [str(x) for x in e.get("loc", ())], "msg": e.get("msg", "")} for e in exc.errors()]
        return error_response(400, "bad-request", "request does not match the schema", problems=problems)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, exc: StarletteHTTPException):
        codes = {400: "bad-request", 404: "not-found", 405: "method-not-allowed", 413: "too-large"}
        return error_response(exc.status_code, codes.get(exc.status_code, "http-error"), str(exc.detail))

    @app.exception_handler(ClientDisconnect)
    async def _client_gone(_request: Request, _exc: ClientDisconnect):
        # The sender hung up before its body arrived (a peer that timed out, a cut link): not our failure.
        return error_response(400, "client-disconnected", "the request body was cut off")

    @app.exception_handler(Exception)
    async def _internal_error(_request: Request, exc: Exception):
        log.exception("internal error")
        return error_response(500, "internal-error", "the node failed to answer; see its log")

    class _LimitBody:
        """Pure ASGI: refuse an oversized Content-Length before reading the body (no BaseHTTPMiddleware task group)."""

        def __init__(self, inner):
            self.inner = inner

        async def __call__(self, scope, receive, send):
            if scope["type"] == "http":
                for name, value in scope.get("headers", ()):
                    if name == b"content-length":
                        try:
                            too_big = int(value) > config.max_request_bytes
                        except ValueError:
                            await error_response(400, "bad-request",
                                                 "content-length is not a number")(scope, receive, send)
                            return
                        if too_big:
                            too_large = error_response(413, "too-large",
                                                       f"request body over {config.max_request_bytes} bytes")
                            await too_large(scope, receive, send)
                            return
                        break
            await self.inner(scope, receive, send)

    app.add_middleware(_LimitBody)

    # ------------------------------------------------------------------ read-your-writes guard

    async def min_height_guard(
        min_height: Annotated[int | None, Query(ge=0, le=2**63 - 1,
                                                description="answer only once this height is committed")] = None,
    ) -> None:
        if min_height is None:
            return
        try:
            ok = await node.waiters.wait_for_height(min_height, config.min_height_wait_ms / 1000,
                                                    config.max_waiting_reads)
        except WaitRefused as exc:
            raise ApiError(503, exc.code, exc.message, **exc.details) from None
        if not ok:
            raise ApiError(503, "height-not-reached",
                           f"node is at height {node.store.height}, below min_height {min_height}; retry later "
                           "or ask another node", height=node.store.height)

    Guard = Depends(min_height_guard)

    # ------------------------------------------------------------------ node

    @app.get("/v1/health", tags=["node"], summary="Is the node up", **returns(nm.Health, 400, 503))
    async def health():
        """200 while the node serves and its consensus runs; 503 node-failed once it has stopped on a fatal error."""
        if node.fatal is not None:
            raise ApiError(503, "node-failed", str(node.fatal))
        return {"ok": True, "height": node.store.height}

    @app.get("/v1/status", tags=["node"], dependencies=[Guard], summary="Node status",
             **returns(nm.NodeStatus, 400, 503))
    async def status():
        """Chain, committed tip, consensus step, mempool totals, peer links, clock skew and CPU use of the node."""
        return node_status(node)

    add_validator_routes(app, node, Guard, ApiError, returns)
    add_snapshot_routes(app, node, returns)
    add_event_routes(app, node, ApiError, parse_address)

    @app.get("/v1/genesis", tags=["node"], dependencies=[Guard], summary="The genesis document",
             **returns(nm.Genesis, 400, 503))
    async def genesis():
        """The genesis document this node runs and its hash; a wallet pins the hash to recognise the chain."""
        # The file the node checked at start, streamed as it is: a genesis of a million allocations is parsed by
        # nobody here (parsing it on the event loop would stall consensus for every request).
        path = node.genesis_path

        def body():
            yield b'{"genesis_hash": "' + node.genesis_hash.hex().encode() + b'", "genesis": '
            with open(path, "rb") as handle:
                while chunk := handle.read(1 << 20):
                    yield chunk
            yield b"}"
        return StreamingResponse(body(), media_type="application/json")

    @app.get("/v1/evidence", tags=["node"], dependencies=[Guard], summary="Equivocation evidence",
             **returns(nm.Evidence, 400, 503))
    async def evidence():
        """Conflicting votes of one validator (same height, round and type) that this node has seen."""
        return {"evidence": node.evidence.records}

    @app.get("/v1/mempool", tags=["node"], dependencies=[Guard], summary="Pending transactions",
             **returns(nm.Mempool, 400, 503))
    async def mempool(limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="at most this many txs")] = 100):
        """Mempool totals and up to `limit` pending transactions with their fees, in admission order."""
        entries = list(node.mempool.entries.values())[:limit]
        return {"size": len(node.mempool), "bytes": node.mempool.total_bytes,
                "txs": [{"txid": e.tx.txid.hex(), "fee": e.fee, "size": e.size} for e in entries]}

    @app.get("/metrics", tags=["node"], summary="Prometheus metrics", response_class=PlainTextResponse,
             responses={200: {"model": nm.MetricsText, "description": "the metrics, text/plain; version=0.0.4"},
                        **error_responses(400, json_ref=True)})
    async def metrics():
        """The node's counters and gauges in the Prometheus text format, for a scraper."""
        return Response(node.metrics.render(), media_type="text/plain; version=0.0.4")

    # ------------------------------------------------------------------ blocks

    def check_not_pruned(height: int) -> None:
        earliest = node.store.earliest_height
        if height < earliest and (height > 0 or earliest > 1):  # (a node from a snapshot has no genesis indexes)
            raise ApiError(410, "pruned", f"height {height} is below this node's earliest height {earliest} (it "
                                          f"started from a snapshot or keeps only recent blocks); ask a node that "
                                          f"keeps it", earliest_height=earliest)

    def load_block(height: int) -> dict:
        check_not_pruned(height)
        block = node.store.get_block(height)
        if block is None:
            check_not_pruned(height)  # pruned meanwhile
        if block is None:
            raise ApiError(404, "block-not-found", f"no block at height {height}; the node is at {node.store.height}",
                           height=node.store.height)
        return block_json(block, node.store.get_commit(height))

    @app.get("/v1/blocks/latest", tags=["blocks"], dependencies=[Guard], summary="The latest block",
             **returns(m.BlockView, 400, 404, 503))
    async def latest_block():
        """The block at the committed height, with its transactions and commit; 404 while only genesis exists."""
        if node.store.height == 0:
            raise ApiError(404, "block-not-found", "no block committed yet (height 0 is genesis)")
        return load_block(node.store.height)

    @app.get("/v1/blocks/{height}", tags=["blocks"], dependencies=[Guard], summary="A block by height",
             **returns(m.BlockView, 400, 404, 410, 503))
    async def block_at(height: int):
        """The block at `height` (from 1), with its transactions and commit; 404 above the committed height."""
        if height < 1:
            raise ApiError(404, "block-not-found", "heights start at 1 (0 is genesis)")
        return load_block(height)

    @app.get("/v1/blocks", tags=["blocks"], dependencies=[Guard], summary="A range of blocks",
             **returns(m.BlockRange, 400, 503))
    async def blocks(
        from_: Annotated[int | None, Query(alias="from", ge=1, description="first height (default: to - 19)")] = None,
        to: Annotated[int | None, Query(ge=1, description="last height (default: the committed height)")] = None,
        txs: Annotated[bool, Query(description="include each block's transactions")] = False,
    ):
        """Blocks `from`..`to`, oldest first, at most 100 (400 range-too-large); heights above the tip are left
        out. Without `txs=true` each block carries only its txids."""
        top = node.store.height
        end = min(to if to is not None else top, top)
        start = from_ if from_ is not None else max(1, end - 19)
        if end >= start and end - start + 1 > MAX_BLOCK_RANGE:
            raise ApiError(400, "range-too-large", f"at most {MAX_BLOCK_RANGE} blocks per request")
        out = []
        for height in range(start, end + 1):
            if txs:
                block = node.store.get_block(height)
                if block is not None:
                    out.append(block_json(block, node.store.get_commit(height)))
            else:  # txids only: read without decoding each transaction (a long-polling client asks for this)
                summary = node.store.get_block_summary(height)
                if summary is not None:
                    out.append(block_summary_json(summary, node.store.get_commit(height)))
        return {"height": top, "from": start, "to": end, "blocks": out}

    # ------------------------------------------------------------------ transactions

    add_tx_routes(app, node, guard=Guard, api_error=ApiError, returns=returns, parse_hex=parse_hex,
                  decode_tx_hex=decode_tx_hex, tx_error_status=tx_error_status)

    # ------------------------------------------------------------------ addresses

    add_address_routes(app, node, guard=Guard, api_error=ApiError, returns=returns, parse_address=parse_address,
                       parse_hex=parse_hex, check_not_pruned=check_not_pruned, sign_answer=sign_answer)

    add_explorer(app, node)  # the HTML explorer at /, after the REST routes it reuses
    return app
