"""Targeted bad input on every client and peer route: garbage, oversize bodies,
wrong types, unknown fields, forged signatures, wrong chain id.  Each gets a
4xx with a stable error code (or, for a well-framed peer batch, a per-item
rejection), never a 500, and the chain is not touched."""

from __future__ import annotations

import asyncio
import types

from node.api.app import create_app
from node.config import NodeConfig


def _asgi_call(app, method: str, path: str, messages: list[dict], headers: list[tuple[bytes, bytes]]) -> list[dict]:
    """Drive the ASGI app in-process with a scripted ``receive``."""
    sent: list[dict] = []

    async def receive():
        if messages:
            return messages.pop(0)
        await asyncio.sleep(5)
        return {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": method, "path": path, "raw_path": path.encode(), "query_string": b"",
             "headers": headers, "http_version": "1.1", "scheme": "http", "server": ("127.0.0.1", 1),
             "client": ("127.0.0.1", 2), "root_path": ""}
    asyncio.run(asyncio.wait_for(app(scope, receive, send), 10))
    return sent


def test_peer_hanging_up_mid_body_is_not_an_internal_error():
    """A peer whose request is cut off (timeout, cut link) used to be logged as a 500 'internal error'."""
    app = create_app(types.SimpleNamespace(config=NodeConfig()))
    for path in ("/p2p/consensus", "/p2p/txs", "/v1/txs"):
        sent = _asgi_call(app, "POST", path,
                          [{"type": "http.request", "body": b"\x00\x00", "more_body": True}, {"type": "http.disconnect"}],
                          [(b"content-type", b"application/octet-stream"), (b"content-length", b"100")])
        assert sent and sent[0]["type"] == "http.response.start"
        assert sent[0]["status"] < 500, (path, sent[0])
