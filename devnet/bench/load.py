"""The bench's load: offer pre-signed transfers open-loop, follow the chain, sample the nodes, find a rate.

``Bench.run`` offers the load at ``--rate`` (or, with ``--max``, first ramps
the rate up in short steps to the highest one with latency to spare), each
batch round-robin to the next node through ``POST /v1/txs/batch``, while
one task long-polls node 0's blocks (``GET /v1/blocks`` with
``min_height``, never one request per transaction) to learn each
transaction's commit, and another samples every node process once a second.
"""

from __future__ import annotations

import asyncio
import collections
import math
import time

import httpx

from devnet.bench.measure import (
    BlockSeen,
    NodeSample,
    Phase,
    dir_bytes,
    measure_verdict,
    memory_parts,
    proc_sample,
    step_verdict,
)
from devnet.bench.options import Options
from devnet.bench.report import describe_step, fmt_s, live
from devnet.bench.workload import TxRecord, Workload
from devnet.cluster import NodeSpec, read_pid
from node.config import DATA_DIR

TICK_S = 0.1
"""A batch leaves at least this often at low rates (so 50 tx/s is 5 every 0.1 s, not 100 every 2 s)."""
BACKOFF = 0.9
"""With --max, a measured rate that does not hold is measured again this much lower."""
TRANSIENT_CODES = frozenset({"mempool-full", "catching-up"})
"""Rejections that say "not now": the same transaction is offered again later."""


DRAIN_BEFORE_RETRY_S = 180.0
"""How long a failed --max attempt's backlog may take to commit before the next, lower rate is measured."""
MEMORY_EVERY_S = 20.0
"""How often the sampler reads what holds each node's memory (its ``/metrics``: a scrape costs the node a few
milliseconds, most of it walking the C heap), so every minute of ``node_memory_by_minute`` has a reading."""


class Bench:
    """The asynchronous part: offer load, follow the blocks, sample the nodes, show progress."""

    def __init__(self, opts: Options, specs: list[NodeSpec], workload: Workload, log, console=None):
        self.opts = opts
        self.specs = specs
        self.workload = workload
        self.log = log
        self.console = console
        self.blocks: list[BlockSeen] = []
        self.phases: list[Phase] = []
        self.samples: dict[str, list[tuple[float, NodeSample]]] = {s.name: [] for s in specs}
        self.pids = {s.name: read_pid(s.home) for s in specs}
        self.rejections: collections.Counter[str] = collections.Counter()
        self.errors: collections.Counter[str] = collections.Counter()
        self.sent_requests = 0
        self.sent_txs = 0
        """Transfers sent at least once (for the live view, which must not walk every record)."""
        self.committed_txs = 0
        """Transfers seen committed."""
        self.recent_commits: collections.deque[tuple[float, float]] = collections.deque()
        """(seen, latency) of the commits of the last ``measure.RECENT_S`` seconds, oldest first (the live view)."""
        self.next_height = 1
        self.start_height = 0
        self.t0 = 0.0
        self.wall_offset = time.time() - time.monotonic()
        self.in_flight: list[int] = [0] * len(specs)
        self.phase: Phase | None = None
        self.ramp: list[dict] = []
        self.attempts: list[dict] = []
        self.stop_tracking = False
        self.node_failed: str | None = None
        self.tracker_error = ""
        self._pending_posts: set[asyncio.Task] = set()
        self.chosen_rate = 0.0
        self.measure_start = self.measure_end = 0.0
        self.stages_start: dict[str, dict[str, float]] = {}
        self.stages_end: dict[str, dict[str, float]] = {}
        self.drained = False

    # ---------------------------------------------------------------- submission

    async def _post(self, client: httpx.AsyncClient, node: int, records: list[TxRecord], phase: Phase) -> None:
        body = ('{"txs":["' + '","'.join(r.hex for r in records) + '"]}').encode()
        now = time.monotonic()
        for r in records:
            r.submit_t = now
            r.phase = phase.name
            r.attempts += 1
            r.status = "sent"
        self.sent_txs += sum(1 for r in records if r.attempts == 1)
        self.in_flight[node] += 1
        self.sent_requests += 1
        try:
            response = await client.post(self.specs[node].url + "/v1/txs/batch", content=body,
                                         headers={"content-type": "application/json"})
        except (httpx.HTTPError, OSError) as exc:
            code = f"transport:{type(exc).__name__}"
            self.errors[code] += len(records)
            for r in records:
                if r.status != "committed":
                    r.status, r.code = "error", code
            return
        finally:
            self.in_flight[node] -= 1
        if response.status_code != 200:
            try:
                code = response.json()["error"]["code"]
            except (ValueError, KeyError, TypeError):
                code = f"http-{response.status_code}"
            self.rejections[code] += len(records)
            for r in records:
                if r.status == "committed":
                    continue
                r.status, r.code = "rejected", code
                if code in TRANSIENT_CODES or response.status_code == 503:
                    self.workload.release(r, committed=False)
                else:
                    self.workload.retire(r)
            return
        results = response.json()["results"]
        for r, result in zip(records, results, strict=True):
            status = result.get("status")
            if r.status == "committed":
                continue
            if status == "accepted":
                r.status = "accepted"
            elif status == "committed":
                r.status = "accepted"  # the block follower will see it
            else:
                code = result.get("code", "rejected")
                r.status, r.code = "rejected", code
                self.rejections[code] += 1
                if code in TRANSIENT_CODES:
                    self.workload.release(r, committed=False)
                else:
                    self.workload.retire(r)

    async def offer(self, clients: list[httpx.AsyncClient], name: str, rate: float, seconds: float) -> Phase:
        """Send at ``rate`` for ``seconds``: open loop, batches round-robin over the nodes."""
        n = len(self.specs)
        batch = max(1, min(self.opts.batch, math.ceil(rate * TICK_S)))
        interval = batch / rate
        start = time.monotonic()
        phase = Phase(name, rate, start, start + seconds)
        self.phases.append(phase)
        self.phase = phase
        k = 0
        loop = asyncio.get_running_loop()
        while True:
            due = start + k * interval
            if due >= phase.end:
                break
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            if self.node_failed:
                break
            node = k % n
            k += 1
            records = self.workload.take(node, batch)
            phase.starved += batch - len(records)
            if not records:
                continue
            phase.offered += len(records)
            if self.in_flight[node] >= self.opts.inflight * 4:
                self.errors["client-backlog"] += 1
            task = loop.create_task(self._post(clients[node], node, records, phase), name="batch post")
            self._pending_posts.add(task)
            task.add_done_callback(self._pending_posts.discard)
            task.add_done_callback(self.report_failure)
        phase.end = time.monotonic()
        return phase

    def report_failure(self, task: asyncio.Task) -> None:
        """Done callback of every bench task: an exception it did not handle (they handle transport errors, so
        this is a bug) is counted in ``errors``, which the report shows, and logged at once."""
        if not task.cancelled() and (exc := task.exception()) is not None:
            self.errors[f"bench-error:{task.get_name()}:{type(exc).__name__}"] += 1
            self.log(f"!! {task.get_name()} failed: {type(exc).__name__}: {exc}")

    async def settle_posts(self) -> None:
        if self._pending_posts:
            await asyncio.gather(*list(self._pending_posts), return_exceptions=True)

    # ---------------------------------------------------------------- following the chain

    async def track(self, client: httpx.AsyncClient) -> None:
        """Long-poll node 0's blocks; mark each of our transactions committed when its block shows up."""
        url = self.specs[0].url + "/v1/blocks"
        records = self.workload.records
        while not self.stop_tracking:
            h = self.next_height
            try:
                response = await client.get(url, params={"from": h, "to": h + 99, "min_height": h}, timeout=15)
            except (httpx.HTTPError, OSError) as exc:
                self.tracker_error = type(exc).__name__
                await asyncio.sleep(0.2)
                continue
            if response.status_code == 503:  # the long poll ran out (no block for a while): ask again
                await asyncio.sleep(0.01)
                continue
            if response.status_code != 200:
                self.tracker_error = f"HTTP {response.status_code}"
                await asyncio.sleep(0.2)
                continue
            now = time.monotonic()
            for block in response.json()["blocks"]:
                height = block["height"]
                if height != self.next_height:
                    continue
                self.next_height = height + 1
                self.blocks.append(BlockSeen(height, now, block["tx_count"], block["header"]["time_ms"]))
                for txid in block["txids"]:
                    r = records.get(txid)
                    if r is None:
                        continue
                    r.commits += 1
                    if r.commits == 1:
                        r.commit_t = now
                        r.height = height
                        r.status = "committed"
                        self.committed_txs += 1
                        if r.submit_t is not None:
                            self.recent_commits.append((now, now - r.submit_t))
                        self.workload.release(r, committed=True)

    async def stage_totals(self, client: httpx.AsyncClient) -> dict[str, dict[str, float]]:
        """Each node's CPU seconds by stage so far (``cpu_stages_s`` of ``GET /v1/status``); {} if one fails."""
        out = {}
        for spec in self.specs:
            try:
                out[spec.name] = (await client.get(spec.url + "/v1/status", timeout=5)).json()["cpu_stages_s"]
            except (httpx.HTTPError, ValueError, KeyError, TypeError):
                return {}
        return out

    async def sample_nodes(self, client: httpx.AsyncClient) -> None:
        """Every node process (CPU, memory) and its store's size, once a second; what holds its memory (its
        ``/metrics``), every ``MEMORY_EVERY_S``."""
        scraped = -MEMORY_EVERY_S
        while not self.stop_tracking:
            now = time.monotonic()
            scrape = now - scraped >= MEMORY_EVERY_S
            if scrape:
                scraped = now
            taken: list[tuple[NodeSpec, NodeSample]] = []
            for spec in self.specs:  # every process read at ``now``, before any request
                s = proc_sample(self.pids[spec.name])
                if s is not None:
                    s.store_mb = dir_bytes(spec.home / DATA_DIR) / 1e6
                    taken.append((spec, s))
                    self.samples[spec.name].append((now, s))
                elif self.pids[spec.name] is not None and self.opts.attach is None:
                    self.node_failed = f"{spec.name} (pid {self.pids[spec.name]}) is gone"
            if scrape:  # all nodes at once; a reading joins the sample taken above
                texts = await asyncio.gather(*(client.get(spec.url + "/metrics", timeout=5) for spec, _ in taken),
                                             return_exceptions=True)
                for (_spec, s), answer in zip(taken, texts, strict=True):
                    if isinstance(answer, httpx.Response):
                        s.memory = memory_parts(answer.text)
            await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - now)))

    # ---------------------------------------------------------------- phases

    def retire_measure(self, attempt: int) -> None:
        """Rename a measured phase that did not hold, so the next attempt is measured alone."""
        name = f"measure-{attempt}"
        for phase in self.phases:
            if phase.name in ("measure", "warmup"):
                phase.name = f"{phase.name}-{attempt}"
        for r in self.workload.records.values():
            if r.phase == "measure":
                r.phase = name
            elif r.phase == "warmup":
                r.phase = f"warmup-{attempt}"

    async def drain(self, timeout: float) -> bool:
        """Wait until everything accepted so far is committed (or the time runs out)."""
        await self.settle_posts()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            waiting = sum(1 for r in self.workload.records.values() if r.status in ("accepted", "sent"))
            if waiting == 0:
                return True
            await asyncio.sleep(0.2)
        return False

    async def run(self, presign_more) -> None:
        opts = self.opts
        limits = httpx.Limits(max_connections=opts.inflight, max_keepalive_connections=opts.inflight)
        clients = [httpx.AsyncClient(timeout=30, limits=limits) for _ in self.specs]
        tracker_client = httpx.AsyncClient(timeout=20)
        async with tracker_client:
            status = (await tracker_client.get(self.specs[0].url + "/v1/status")).json()
            self.start_height = status["height"]
            self.next_height = self.start_height + 1
            self.t0 = time.monotonic()
            self.wall_offset = time.time() - time.monotonic()
            background = [asyncio.create_task(self.track(tracker_client), name="block follower"),
                          asyncio.create_task(self.sample_nodes(tracker_client), name="node sampler"),
                          asyncio.create_task(live(self), name="live view")]
            for task in background:
                task.add_done_callback(self.report_failure)
            try:
                if opts.max:
                    rate = await self.search(clients)
                    await self.drain(60)
                else:
                    rate = opts.rate
                attempts = opts.attempts if opts.max else 1
                for attempt in range(attempts):
                    if opts.max:
                        signed = presign_more(rate)
                        self.log(f"signed {signed} more transfers for {rate:.0f} tx/s")
                    self.chosen_rate = rate
                    if opts.warmup > 0:
                        await self.offer(clients, "warmup", rate, opts.warmup)
                    self.stages_start = await self.stage_totals(tracker_client)
                    self.measure_start = time.monotonic()
                    await self.offer(clients, "measure", rate, opts.duration)
                    self.measure_end = time.monotonic()
                    self.stages_end = await self.stage_totals(tracker_client)
                    self.drained = await self.drain(max(30.0, 10 * opts.target_p50))
                    verdict = measure_verdict(self)
                    self.attempts.append(verdict)
                    if verdict["sustained"] or attempt == attempts - 1 or self.node_failed:
                        break
                    self.log(f"{rate:.0f} tx/s did not hold for {opts.duration:.0f} s (p50 {fmt_s(verdict['p50_s'])}, "
                             f"committed {verdict['committed_tps']:.0f}/s); measuring again at "
                             f"{rate * BACKOFF:.0f} tx/s")
                    self.retire_measure(attempt)
                    rate = round(rate * BACKOFF)
                    if not self.drained:  # the next attempt starts from an empty backlog, not this one's
                        self.drained = await self.drain(DRAIN_BEFORE_RETRY_S)
                # let the follower see the last blocks
                await asyncio.sleep(0.3)
            finally:
                self.stop_tracking = True
                for task in background:
                    task.cancel()
                await asyncio.gather(*background, return_exceptions=True)  # failures: report_failure
                await self.settle_posts()
                for c in clients:
                    await c.aclose()

    async def _step(self, clients, name: str, rate: float) -> dict:
        phase = await self.offer(clients, name, rate, self.opts.step)
        verdict = step_verdict(self, phase, time.monotonic())
        self.ramp.append(verdict)
        self.log(describe_step(verdict))
        return verdict

    async def _step_twice(self, clients, name: str, rate: float) -> bool:
        """A step, and once more if it failed: one stall (a compaction, a GC, a neighbour's burst) in a
        few seconds is not the rate's fault, a second failure is."""
        if (await self._step(clients, name, rate))["sustained"]:
            return True
        await self.drain(60)
        return (await self._step(clients, name + "-again", rate))["sustained"]

    async def search(self, clients) -> float:
        """The --max ramp: raise the rate until a step fails twice; then one bisection step."""
        best = 0.0
        failed = None
        for i, rate in enumerate(self.opts.ramp_rates()):
            if not await self._step_twice(clients, f"ramp-{i}", rate):
                failed = rate
                break
            best = rate
        if failed is not None and best > 0:
            mid = round((best + failed) / 2)
            if failed - best >= 0.08 * best:
                await self.drain(60)
                if (await self._step(clients, "ramp-refine", mid))["sustained"]:
                    best = mid
        if best == 0:
            best = self.opts.start_rate / 2
            self.log(f"even {self.opts.start_rate:.0f} tx/s was not sustained; measuring at {best:.0f}")
        return best

