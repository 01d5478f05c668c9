"""Screenshots of the explorer's home, block, transaction and address pages of a running node, for the docs.

    python scripts/explorer_screenshots.py --node http://127.0.0.1:26657 [--out docs] [--tx TXID] [--address ADDR]

Drives Debian's Chromium (``/usr/bin/chromium``, or ``--chromium``) with Playwright. Without ``--tx`` it shows
the newest transaction among the last 200 blocks and the address its first output pays (``--address`` to choose
another). Writes ``explorer-home.png``, ``explorer-block.png``, ``explorer-tx.png`` and ``explorer-address.png``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import httpx

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SEARCH_BLOCKS = 200


def find_transaction(client: httpx.Client, node: str) -> tuple[int, str, str]:
    """(height, txid, first output's address) of the newest transaction in the last ``SEARCH_BLOCKS`` blocks."""
    tip = client.get(f"{node}/v1/status").json()["height"]
    for height in range(tip, max(0, tip - SEARCH_BLOCKS), -1):
        block = client.get(f"{node}/v1/blocks/{height}").json()
        if block.get("txs"):
            tx = block["txs"][0]
            return height, tx["txid"], tx["outputs"][0]["address"]
    raise SystemExit(f"no transaction in the last {SEARCH_BLOCKS} blocks: send one first, or pass --tx")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--node", required=True, help="the node's REST URL")
    parser.add_argument("--out", type=Path, default=Path("docs"), help="folder of the PNG files (default docs)")
    parser.add_argument("--tx", help="the transaction to show (default: the newest found)")
    parser.add_argument("--address", help="the address to show (default: the transaction's first output's)")
    parser.add_argument("--chromium", default=CHROMIUM, help=f"the browser (default {CHROMIUM})")
    args = parser.parse_args(argv)
    node = args.node.rstrip("/")
    with httpx.Client(timeout=10) as client:
        if args.tx:
            found = client.get(f"{node}/v1/txs/{args.tx}").json()
            height, txid = found.get("height", 0), args.tx
            address = args.address or found["tx"]["outputs"][0]["address"]
        else:
            height, txid, address = find_transaction(client, node)
            address = args.address or address
    from playwright.sync_api import sync_playwright  # the test extra's; only this script and the tests use it

    args.out.mkdir(parents=True, exist_ok=True)
    pages = {"home": "/", "block": f"/blocks/{height}" if height else "/blocks/1", "tx": f"/txs/{txid}",
             "address": f"/addresses/{address}"}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            for name, path in pages.items():
                page.goto(node + path, wait_until="load", timeout=15_000)
                target = args.out / f"explorer-{name}.png"
                page.screenshot(path=str(target), full_page=False)
                print(target)
        finally:
            browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
