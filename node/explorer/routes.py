"""The explorer's routes: HTML pages at ``/``, ``/blocks/{height}``, ``/txs/{txid}``, ``/addresses/{address}``,
``/validators`` and ``/search``, and their assets under ``/assets``.

Every page is rendered on the server (Jinja2, autoescaped) and answered with
a Content-Security-Policy that allows only this node's own scripts, styles
and connections; a mistake in a URL gets an HTML page with a 4xx status, a
pruned height 410.  The transaction page and the validator set changes
reuse the REST handlers (``GET /v1/txs/{txid}``, ``GET
/v1/validators/changes``), so both views say the same.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any

import jinja2
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates
from starlette.staticfiles import StaticFiles
from starlette.types import Message, Receive, Scope, Send

from node.crypto import CryptoError, decode_address
from node.errors import CodedError
from node.explorer.formats import FILTERS
from node.explorer.pages import SummaryCache, block_page, home_page, validators_page
from node.explorer.search import resolve_query
from node.explorer.tx_pages import (
    address_page,
    parse_history_cursor,
    parse_outpoint_cursor,
    tx_page,
)

ASSETS_URL = "/assets"
CONTENT_SECURITY_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                           "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
                           "frame-ancestors 'none'")
"""Only this node's own files: no inline script or style, no other origin."""
SECURITY_HEADERS = {"Content-Security-Policy": CONTENT_SECURITY_POLICY, "X-Content-Type-Options": "nosniff",
                    "Referrer-Policy": "no-referrer"}


class _WithHeaders:
    """Pure ASGI: add the explorer's security headers to every response of ``inner`` (its static files)."""

    def __init__(self, inner: StaticFiles):
        self.inner = inner

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                extra = [(k.lower().encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)
        await self.inner(scope, receive, send_with_headers)


def rest_endpoint(app: FastAPI, path: str) -> Callable[..., Awaitable[Any]]:
    """The handler of the REST route ``GET path`` on ``app`` (registered before or after the explorer)."""
    for route in app.router.routes:
        if isinstance(route, APIRoute) and route.path == path and "GET" in (route.methods or ()):
            return route.endpoint
    raise LookupError(f"no GET {path} route on the app")


def make_templates() -> Jinja2Templates:
    """The explorer's templates: autoescaped, undefined names an error, the ``formats`` filters."""
    folder = resources.files("node.explorer") / "templates"
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(folder)), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(FILTERS)
    return Jinja2Templates(env=env)


def add_explorer(app: FastAPI, node) -> None:
    """Serve the explorer pages of ``node`` on ``app`` (none in the OpenAPI schema)."""
    templates = make_templates()
    summaries = SummaryCache()
    static = StaticFiles(directory=str(resources.files("node.explorer") / "static"))
    app.mount(ASSETS_URL, _WithHeaders(static), name="explorer-assets")

    def render(request: Request, name: str, context: dict, status: int = 200) -> Response:
        base = {"chain_id": node.chain_id, "node_height": node.store.height, "now_ms": int(time.time() * 1000),
                "query": context.pop("query", "")}
        return templates.TemplateResponse(request, name, {**base, **context}, status_code=status,
                                          headers=SECURITY_HEADERS)

    def error_page(request: Request, status: int, code: str, title: str, message: str, query: str = "") -> Response:
        return render(request, "error.html", {"status": status, "code": code, "title": title, "message": message,
                                              "query": query}, status)

    def pruned_page(request: Request, height: int) -> Response:
        earliest = node.store.earliest_height
        return error_page(request, 410, "pruned", f"Block {height} is pruned",
                          f"This node no longer keeps block {height}: its earliest block is {earliest} (it started "
                          f"from a snapshot or keeps only recent blocks). Ask a node that keeps the whole chain.")


    @app.get("/", include_in_schema=False, response_class=HTMLResponse)
    async def home(request: Request):
        return render(request, "home.html", home_page(node.store, summaries, node.chain_id, len(node.mempool)))

    @app.get("/blocks/{height}", include_in_schema=False, response_class=HTMLResponse)
    async def block(request: Request, height: str, page: str = "0"):
        if not (height.isascii() and height.isdigit()) or len(height) > 19 or \
                not (page.isascii() and page.isdigit()) or len(page) > 9:
            return error_page(request, 400, "bad-height", "Not a block height",
                              "A block is named by its height, a whole number from 1 (search for a block hash).")
        number = int(height)
        if 0 < number < node.store.earliest_height:
            return pruned_page(request, number)
        data = block_page(node.store, number, int(page)) if number > 0 else None
        if data is None:
            if 0 < number < node.store.earliest_height:  # pruned meanwhile
                return pruned_page(request, number)
            return error_page(request, 404, "block-not-found", f"No block {number}",
                              f"This node is at height {node.store.height}; heights start at 1 (0 is genesis).")
        return render(request, "block.html", data)

    get_tx = rest_endpoint(app, "/v1/txs/{txid}")

    @app.get("/txs/{txid}", include_in_schema=False, response_class=HTMLResponse)
    async def transaction(request: Request, txid: str):
        try:
            raw = bytes.fromhex(txid)
        except ValueError:
            raw = b""
        if len(raw) != 32:
            return error_page(request, 400, "bad-hex", "Not a transaction id",
                              "A transaction id is 64 hexadecimal characters.")
        try:
            answer = await get_tx(raw.hex())
        except CodedError as exc:
            status = getattr(exc, "status", 404)
            return error_page(request, status, exc.code, "Transaction not found" if status == 404 else "Error",
                              "This node has no such transaction, neither pending nor committed."
                              if status == 404 else exc.message)
        return render(request, "tx.html", tx_page(answer, node.store, node.mempool, node.chain_id))

    @app.get("/addresses/{address}", include_in_schema=False, response_class=HTMLResponse)
    async def address(request: Request, address: str, utxos_after: str | None = None, before: str | None = None):
        try:
            account = decode_address(address)
        except CryptoError as exc:
            wrong_checksum = exc.code == "bad-address-checksum"
            return error_page(request, 400, exc.code, "Wrong address checksum" if wrong_checksum else "Not an address",
                              "This address's checksum is wrong: check it for a typo." if wrong_checksum
                              else f"This is not a valid address: {exc.message}.")
        try:
            after, history_before = parse_outpoint_cursor(utxos_after), parse_history_cursor(before)
        except ValueError as exc:
            return error_page(request, 400, "bad-cursor", "Bad page cursor", str(exc))
        return render(request, "address.html", address_page(node.store, account, after, history_before))

    get_changes = rest_endpoint(app, "/v1/validators/changes")

    @app.get("/validators", include_in_schema=False, response_class=HTMLResponse)
    async def validators(request: Request):
        changes = (await get_changes(start=1))["changes"]
        return render(request, "validators.html", validators_page(node.store, node.evidence.records, changes))

    @app.get("/search", include_in_schema=False, response_class=HTMLResponse)
    async def search(request: Request, q: str = ""):
        outcome = resolve_query(q, node.store, node.mempool)
        if outcome.location is not None:
            return RedirectResponse(outcome.location, status_code=303, headers=SECURITY_HEADERS)
        title = {"bad-address-checksum": "Wrong address checksum", "not-found": "Not found"}.get(outcome.code,
                                                                                               "Cannot search")
        return error_page(request, outcome.status, outcome.code, title, outcome.message, query=q)
