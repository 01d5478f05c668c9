"""``/docs`` and ``/redoc`` load nothing from the internet: their scripts and styles come from the node."""

from __future__ import annotations

import asyncio
import re
import types

import httpx

from node.api.app import create_app
from node.config import NodeConfig


def test_docs_pages_use_only_the_nodes_own_assets():
    app = create_app(types.SimpleNamespace(config=NodeConfig()))

    async def check():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://node") as client:
            for page in ("/docs", "/redoc"):
                response = await client.get(page)
                assert response.status_code == 200, page
                text = response.text
                urls = re.findall(r'(?:src|href)="([^"]+)"', text) + re.findall(r"url: '([^']+)'", text)
                assert urls, page
                for url in urls:
                    assert url.startswith("/"), (page, url)  # the node's own paths: no CDN, no font service
                    assert (await client.get(url)).status_code == 200, url
                assert "googleapis" not in text and "jsdelivr" not in text
            assert "/docs" not in (await client.get("/openapi.json")).json()["paths"]

    asyncio.run(check())
