"""What the nodes of a network say: their status, waiting for a height, and whether they hold the same chain.

Each question has one answer here, asynchronous at its core (the drill asks
from its own event loop, which also runs its link proxy) with a synchronous
wrapper for the command line, the bench and the tests:

- ``wait_for_height``: every node serves and has committed at least a height
  (height 0: every node answers); stops early when a node's process is gone;
- ``same_chain``: every node holds the same block hash and app hash at every
  height up to a common one (waiting for that height first when not given).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import httpx

from devnet.cluster.processes import node_running
from devnet.cluster.spec import LOG_FILE, STDOUT_FILE, NodeSpec

STATUS_TIMEOUT_S = 1.0
BLOCK_PAGE = 100
"""Blocks per ``GET /v1/blocks`` request (the API's most)."""


def node_status(spec: NodeSpec, timeout_s: float = STATUS_TIMEOUT_S) -> dict | None:
    """``GET /v1/status`` of one node; None when it does not answer 200."""
    try:
        response = httpx.get(spec.url + "/v1/status", timeout=timeout_s)
        if response.status_code == 200:
            return response.json()
    except (httpx.HTTPError, OSError, ValueError):
        return None
    return None


async def fetch_status(client: httpx.AsyncClient, spec: NodeSpec, timeout_s: float = STATUS_TIMEOUT_S) -> dict | None:
    try:
        response = await client.get(spec.url + "/v1/status", timeout=timeout_s)
        if response.status_code == 200:
            return response.json()
    except (httpx.HTTPError, OSError, ValueError):
        return None
    return None


async def fetch_statuses(specs: Sequence[NodeSpec], timeout_s: float = STATUS_TIMEOUT_S,
                         client: httpx.AsyncClient | None = None) -> list[dict | None]:
    """Every node's status, asked at once."""
    if client is None:
        async with httpx.AsyncClient() as own:
            return await fetch_statuses(specs, timeout_s, own)
    return list(await asyncio.gather(*(fetch_status(client, s, timeout_s) for s in specs)))


def statuses(specs: Sequence[NodeSpec], timeout_s: float = STATUS_TIMEOUT_S) -> list[dict | None]:
    return asyncio.run(fetch_statuses(specs, timeout_s))


# --------------------------------------------------------------------------- waiting for a height


@dataclass
class HeightWait:
    """The outcome of ``wait_for_height``."""

    ok: bool
    height: int
    """The height waited for."""
    heights: dict[str, int] = field(default_factory=dict)
    """The last heights seen, of the nodes that answered."""
    problem: str = ""
    """Why not, in one line (empty when ``ok``)."""
    exited: str = ""
    """The node whose process was gone, when that ended the wait."""

    def __bool__(self) -> bool:
        return self.ok


async def wait_for_height_async(specs: Sequence[NodeSpec], height: int, timeout_s: float, *,
                                client: httpx.AsyncClient | None = None, watch_pids: bool = True,
                                poll_s: float = 0.1, status_timeout_s: float = STATUS_TIMEOUT_S,
                                on_poll: Callable[[], object] | None = None) -> HeightWait:
    """Poll until every node in ``specs`` serves and reports at least ``height`` (or time runs out).

    With ``watch_pids`` a node whose process (``HOME/node.pid``) is gone ends
    the wait at once; ``on_poll`` runs after every poll that was not enough.
    """
    if client is None:
        async with httpx.AsyncClient() as own:
            return await wait_for_height_async(specs, height, timeout_s, client=own, watch_pids=watch_pids,
                                               poll_s=poll_s, status_timeout_s=status_timeout_s, on_poll=on_poll)
    deadline = time.monotonic() + timeout_s
    heights: dict[str, int] = {}
    while True:
        if watch_pids:
            for spec in specs:
                if not node_running(spec):
                    return HeightWait(False, height, heights, f"{spec.name} exited; see {spec.home / LOG_FILE} "
                                                              f"and {spec.home / STDOUT_FILE}", exited=spec.name)
        answers = await fetch_statuses(specs, status_timeout_s, client)
        heights = {s.name: int(a["height"]) for s, a in zip(specs, answers, strict=True) if a is not None}
        if len(heights) == len(specs) and all(h >= height for h in heights.values()):
            return HeightWait(True, height, heights)
        if time.monotonic() >= deadline:
            break
        if on_poll is not None:
            on_poll()
        await asyncio.sleep(poll_s)
    shown = ", ".join(f"{s.name} {heights.get(s.name, '-')}" for s in specs)
    what = f"height {height}" if height > 0 else "answering"
    return HeightWait(False, height, heights, f"not every node reached {what} within {timeout_s:.0f} s ({shown})")


def wait_for_height(specs: Sequence[NodeSpec], height: int, timeout_s: float, **options) -> HeightWait:
    """``wait_for_height_async`` from synchronous code."""
    return asyncio.run(wait_for_height_async(specs, height, timeout_s, **options))


# --------------------------------------------------------------------------- the same chain everywhere


@dataclass
class ChainCheck:
    """The outcome of ``same_chain``."""

    height: int
    """Heights ``start .. height`` were compared."""
    start: int = 1
    disagree: list[int] = field(default_factory=list)
    """Heights at which the nodes' (block hash, app hash) differ, or that some node lacks."""
    tips: dict[str, tuple[str, str]] = field(default_factory=dict)
    """Node -> (block hash, app hash) at ``height``."""
    unreachable: dict[str, str] = field(default_factory=dict)
    """Node -> why its chain could not be read."""
    blocks: dict[str, list[dict]] = field(default_factory=dict)
    """The chains as read (``GET /v1/blocks`` JSON), transactions included for ``txs_from``."""
    problem: str = ""

    @property
    def ok(self) -> bool:
        return not self.problem and not self.disagree and not self.unreachable and self.height >= self.start

    @property
    def app_hash(self) -> str | None:
        """The app hash every node holds at ``height`` (None unless ``ok``)."""
        return next(iter(self.tips.values()))[1] if self.ok and self.tips else None

    def describe(self) -> str:
        if self.ok:
            return f"{len(self.tips)} nodes agree on heights {self.start}..{self.height}"
        if self.problem:
            return self.problem
        if self.unreachable:
            return f"could not read the chain of {self.unreachable}"
        return f"nodes disagree at heights {self.disagree[:10]} of {self.start}..{self.height}: {self.tips}"


async def fetch_chain(client: httpx.AsyncClient, url: str, top: int, *, start: int = 1, with_txs: bool = False,
                      timeout_s: float = 30.0, attempts: int = 3) -> list[dict]:
    """Blocks ``start .. top`` of the node at ``url``, in pages; each request is tried ``attempts`` times."""
    blocks: list[dict] = []
    for first in range(start, top + 1, BLOCK_PAGE):
        params: dict[str, int | str] = {"from": first, "to": min(top, first + BLOCK_PAGE - 1),
                                        "txs": str(with_txs).lower()}
        for attempt in range(attempts):
            try:
                response = await client.get(url + "/v1/blocks", params=params, timeout=timeout_s)
                break
            except (httpx.HTTPError, OSError) as exc:
                if attempt == attempts - 1:
                    raise RuntimeError(f"{url}/v1/blocks: {type(exc).__name__}: {exc}") from None
                await asyncio.sleep(0.5)
        response.raise_for_status()
        blocks += response.json()["blocks"]
    return blocks


def chain_disagreements(chains: Mapping[str, Sequence[dict]], top: int, start: int = 1) -> list[int]:
    """Heights ``start .. top`` at which the chains differ in (block hash, app hash) or some chain lacks the block."""
    out = []
    for h in range(start, top + 1):
        seen = {(c[h - start]["hash"], c[h - start]["header"]["app_hash"]) for c in chains.values()
                if len(c) > h - start}
        if len(seen) != 1 or any(len(c) <= h - start for c in chains.values()):
            out.append(h)
    return out


async def same_chain_async(specs: Sequence[NodeSpec], height: int | None = None, *, at_least: int = 1,
                           start: int = 1, timeout_s: float = 30.0, client: httpx.AsyncClient | None = None,
                           txs_from: str | None = None) -> ChainCheck:
    """Do all nodes hold the same blocks and app hashes at heights ``start .. height``?  (``start`` moves up to
    the highest ``earliest_height`` among the nodes: blocks a node pruned are not compared.)

    Without ``height``, first waits (within ``timeout_s``) until every node has
    reached the highest height any of them reports, and at least ``at_least``.
    """
    if client is None:
        async with httpx.AsyncClient() as own:
            return await same_chain_async(specs, height, at_least=at_least, start=start, timeout_s=timeout_s,
                                          client=own, txs_from=txs_from)
    answers = [a for a in await fetch_statuses(specs, STATUS_TIMEOUT_S, client) if a is not None]
    start = max([start] + [int(a.get("earliest_height", 1)) for a in answers])  # (a pruning node has no blocks below)
    if height is None:
        target = max([at_least, start] + [int(a["height"]) for a in answers])
        waited = await wait_for_height_async(specs, target, timeout_s, client=client, watch_pids=False, poll_s=0.2)
        if not waited:
            return ChainCheck(target, start, problem=waited.problem)
        height = target
    check = ChainCheck(height, start)
    results = await asyncio.gather(*(fetch_chain(client, s.url, height, start=start, with_txs=s.name == txs_from)
                                     for s in specs), return_exceptions=True)
    for spec, result in zip(specs, results, strict=True):
        if isinstance(result, BaseException):
            check.unreachable[spec.name] = f"{type(result).__name__}: {result}"
        else:
            check.blocks[spec.name] = result
            if len(result) > height - start:
                tip = result[height - start]
                check.tips[spec.name] = (tip["hash"], tip["header"]["app_hash"])
    check.disagree = chain_disagreements(check.blocks, height, start)
    return check


def same_chain(specs: Sequence[NodeSpec], height: int | None = None, **options) -> ChainCheck:
    """``same_chain_async`` from synchronous code."""
    return asyncio.run(same_chain_async(specs, height, **options))
