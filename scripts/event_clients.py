"""Hold many ``GET /v1/events`` streams open against one node and count what they receive (a load aid).

    python scripts/event_clients.py --home /tmp/bench --clients 200 --duration 40
    python scripts/event_clients.py --url http://127.0.0.1:26657 --clients 200 --duration 40

With ``--home`` it waits (up to ``--wait-s``) for the devnet's ``network.json`` and its first node to answer,
so it can be started beside ``ledger-devnet bench --home DIR``.  Every client reads its stream as it comes
(none is slow on purpose).  At the end it prints one JSON line: clients connected, refused, dropped, block and
tx events received, and the node's ``ledger_event_clients_cut``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path

import httpx


async def find_url(home: Path, wait_s: float) -> str:
    from devnet.cluster import load_network
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if (home / "network.json").exists():
            url = load_network(home)[0].url
            try:
                async with httpx.AsyncClient(timeout=1) as client:
                    if (await client.get(url + "/v1/health")).status_code == 200:
                        return url
            except httpx.HTTPError:
                pass
        await asyncio.sleep(0.5)
    raise SystemExit(f"no devnet answering in {home} after {wait_s} s")


async def hold(client: httpx.AsyncClient, url: str, until: float, counts: dict) -> None:
    try:
        async with client.stream("GET", url + "/v1/events") as answer:
            if answer.status_code != 200:
                counts["refused"] += 1
                return
            counts["connected"] += 1
            async for line in answer.aiter_lines():
                if line.startswith("event: "):
                    kind = line[7:]
                    counts[kind] = counts.get(kind, 0) + 1
                if time.monotonic() >= until:
                    return
    except httpx.HTTPError:
        counts["dropped"] += 1


async def run(args: argparse.Namespace) -> dict:
    url = args.url or await find_url(Path(args.home), args.wait_s)
    counts = {"connected": 0, "refused": 0, "dropped": 0, "block": 0, "tx": 0}
    until = time.monotonic() + args.duration
    limits = httpx.Limits(max_connections=args.clients + 10, max_keepalive_connections=0)
    async with httpx.AsyncClient(timeout=httpx.Timeout(30, connect=5), limits=limits) as client:
        await asyncio.gather(*(hold(client, url, until, counts) for _ in range(args.clients)))
        try:
            metrics = (await client.get(url + "/metrics")).text
        except httpx.HTTPError:  # the devnet is already down
            metrics = ""
    cut = next((float(line.split()[1]) for line in metrics.splitlines()
                if line.startswith("ledger_event_clients_cut ")), None)
    return {"url": url, "clients": args.clients, "seconds": args.duration, **counts, "node_clients_cut": cut}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--url", help="a node's REST URL")
    where.add_argument("--home", help="a devnet directory (its first node)")
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--duration", type=float, default=40.0, help="seconds to hold the streams")
    parser.add_argument("--wait-s", type=float, default=120.0, help="how long to wait for the devnet (--home)")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args))))


if __name__ == "__main__":
    main()
