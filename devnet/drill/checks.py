"""The checks once every fault is healed and the nodes converged, from the nodes' own answers and a replay.

Every node has the same block hash and app hash at every height; replaying
the chain from genesis, no output is spent twice and every input exists;
the balances the nodes serve for every account and validator at every height
(``GET /v1/balances?height=H``, and one address a height by ``balance?height=H``)
add up to the genesis supply and equal the replay;
every acknowledged transaction is in the chain at the height and block it
was acknowledged with; every balance read matches the replay at the height
the node reported; no request got a 500; no node died on its own; the chain
commits a transfer after healing; and the fault kinds' own checks
(``devnet.drill.fault_checks``, ``devnet.drill.reconfig_checks``).  "Every
node" is every node process: the validators of genesis and the nodes added
later, in the set or not.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import asdict
from typing import TYPE_CHECKING

import httpx

from devnet.cluster import LOG_FILE, HeightWait, same_chain_async, wait_for_height_async
from devnet.drill import fault_checks, reconfig_checks
from devnet.drill.bank import Submission
from devnet.drill.network import TWIN_NAME, DrillNetwork
from devnet.drill.replay import replay
from devnet.drill.verdict import Check
from devnet.drill.workload import Workload
from node.api.address_routes import MAX_BALANCES
from node.crypto import encode_address

if TYPE_CHECKING:
    from devnet.drill.nemesis import Nemesis


class Checker:
    """Everything verified after the run, from the nodes' own answers and an independent replay."""

    def __init__(self, net: DrillNetwork, workload: Workload, nemesis: Nemesis, http: httpx.AsyncClient,
                 twin_enabled: bool, out=print):
        self.net = net
        self.workload = workload
        self.nemesis = nemesis
        self.http = http
        self.twin_enabled = twin_enabled
        self.out = out
        self.checks: list[Check] = []
        self.violations: list[str] = []
        self.details: dict = {}
        self.seconds: dict[str, float] = {}
        """Wall seconds each part of the checking took (in the report's details as ``check_seconds``)."""
        self._lap = time.monotonic()

    def lap(self, part: str) -> None:
        """Charge the time since the last lap to ``part``."""
        now = time.monotonic()
        self.seconds[part] = round(self.seconds.get(part, 0.0) + now - self._lap, 2)
        self._lap = now

    def add(self, name: str, value, ok: bool | None = None, violation: str | None = None) -> None:
        self.checks.append(Check(name, str(value), ok))
        if ok is False:
            self.violations.append(violation or f"{name}: {value}")

    async def get(self, node: str, path: str, params: dict | None = None, timeout: float = 10) -> httpx.Response:
        last: Exception | None = None
        for _ in range(3):
            try:
                return await self.http.get(self.net.url(node) + path, params=params, timeout=timeout)
            except (httpx.HTTPError, OSError) as exc:
                last = exc
                await asyncio.sleep(0.5)
        raise RuntimeError(f"{node} {path}: {last}")


    async def converge(self, timeout_s: float = 180) -> tuple[bool, int]:
        """Wait until every node serves and all have passed the highest height seen at the start."""
        net = self.net
        specs = [net.specs[name] for name in net.names]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s

        async def wait(height: int, wait_s: float) -> HeightWait:
            return await wait_for_height_async(specs, height, wait_s, client=self.http, watch_pids=False, poll_s=0.5,
                                               status_timeout_s=2, on_poll=net.check_crashes)

        net.check_crashes()
        waited = await wait(0, timeout_s)
        if waited:
            target = max(waited.heights.values()) + 1
            waited = await wait(target, max(0.0, deadline - loop.time()))
            if waited:
                return True, min(waited.heights.values())
        self.details["heights_at_timeout"] = waited.heights
        return False, min(waited.heights.values()) if waited.heights else 0

    async def liveness_probe(self) -> tuple[bool, str]:
        """After healing, a fresh transfer must commit."""
        wl = self.workload
        for attempt in range(6):
            for account in range(len(wl.bank.keys)):
                if not wl.bank.available[account]:
                    await wl.refresh(account)
            candidates = [i for i, pool in wl.bank.available.items() if pool]
            if not candidates:
                await asyncio.sleep(2)
                continue
            account = candidates[0]
            inputs = wl.bank.take(account, 1)
            built = wl._build(account, inputs, (account + 1) % len(wl.bank.keys), 0.5)
            if built is None:
                continue
            tx, outs = built
            node = self.net.names[attempt % len(self.net.names)]
            sub = Submission(tx.txid.hex(), node, round(wl.now(), 3), [(op.txid.hex(), op.index) for op, _ in inputs])
            wl.submissions.append(sub)
            await wl.submit(sub, tx.encoded.hex())
            wl._after(sub, account, inputs, outs)
            if sub.outcome == "ack":
                return True, f"committed at height {sub.height} via {node}"
            await asyncio.sleep(1)
        return False, "no transfer committed after healing"

    async def run(self) -> None:
        net = self.net
        self._lap = time.monotonic()
        ok, _ = await self.converge()
        self.lap("converge")
        self.add("nodes converged after heal", "yes" if ok else f"no: {self.details.get('heights_at_timeout')}", ok)
        live, text = await self.liveness_probe()
        self.add("transfer commits after heal", text, live)
        self.lap("transfer after heal")
        fault_checks.check_liveness(self)
        await self.converge(60)
        self.lap("converge")
        heights = {}
        unread = {}
        for name in net.names:
            try:
                heights[name] = int((await self.get(name, "/v1/status")).json()["height"])
            except (RuntimeError, ValueError, KeyError, TypeError) as exc:  # no answer, or not a status
                unread[name] = f"{type(exc).__name__}: {exc}"
        top = min(heights.values()) if heights else 0
        self.details["final_heights"] = heights
        if unread:
            self.details["final_heights_unread"] = unread
            self.out(f"!! final height not read from {', '.join(f'{n} ({e})' for n, e in unread.items())}")
        self.add("height checked (min over nodes)", top)

        try:
            await self._check_all(top, heights)
        except Exception as exc:  # noqa: BLE001  (a check that cannot run is a failed check, not a crash)
            self.add("checks could not finish", f"{type(exc).__name__}: {exc}", False)
        self.details["check_seconds"] = self.seconds
        self.out("checked in " + ", ".join(f"{part} {s:.1f}s" for part, s in self.seconds.items()))

    async def _check_all(self, top: int, heights: dict[str, int]) -> None:
        net, wl = self.net, self.workload
        # 1. the same blocks and app hash everywhere
        ref_name = next((n for n in net.names if n in heights), net.names[0])
        chain = await same_chain_async([net.specs[n] for n in net.names if n in heights], top, client=self.http,
                                       txs_from=ref_name)
        if chain.unreachable:
            raise RuntimeError(f"could not read the chain: {chain.unreachable}")
        chains, disagreements = chain.blocks, chain.disagree
        ref = chains.get(ref_name, [])
        self.lap("blocks of every node")
        self.add("block hash + app hash agreement", f"{len(chains)} nodes x {top} heights, "
                 f"{len(disagreements)} disagree", not disagreements and len(chains) == len(net.names),
                 f"nodes disagree at heights {disagreements[:10]}")

        # 2. replay from genesis: no double spend, fees, supply
        replay = self.replay(ref)
        self.lap("replay")
        self.add("outputs spent twice", len(replay["double_spends"]), not replay["double_spends"],
                 f"outputs spent twice: {replay['double_spends'][:5]}")
        self.add("inputs that never existed", len(replay["missing"]), not replay["missing"],
                 f"spends of unknown outputs: {replay['missing'][:5]}")
        self.add("transactions committed twice", len(replay["dup_txids"]), not replay["dup_txids"])
        self.add("transactions paying out more than in", len(replay["inflation"]), not replay["inflation"],
                 f"outputs above inputs: {replay['inflation'][:5]}")
        bad_supply_replay = [h for h, s in enumerate(replay["supply"]) if s != net.supply]
        self.add("replayed supply == genesis at every height", f"{top + 1 - len(bad_supply_replay)}/{top + 1}",
                 not bad_supply_replay, f"replayed supply off at heights {bad_supply_replay[:10]}")

        # 3. the nodes' own balances at every height: sum == supply, each == replay
        try:
            api_bad_supply, api_mismatch, queries = await self.check_api_balances(top, replay)
        except Exception as exc:  # noqa: BLE001  (balances that cannot be read are a failed check, not a crash)
            self.add("served balances at every height", f"could not read: {type(exc).__name__}: {exc}", False)
        else:
            self.add("served balances sum to supply at every height",
                     f"{top + 1 - len(api_bad_supply)}/{top + 1} heights ({queries} queries)", not api_bad_supply,
                     f"served balances do not add up to the supply at heights {api_bad_supply[:10]}")
            self.add("served balances == replay", f"{len(api_mismatch)} mismatches", not api_mismatch,
                     f"served balance differs from replay: {api_mismatch[:5]}")

        self.lap("served balances")

        # 4. acknowledged transactions
        lost, misplaced = [], []
        for txid, sub in wl.acks.items():
            where = replay["txs"].get(txid)
            if where is None:
                lost.append(txid)
            elif where[0] != sub.height or replay["hashes"][where[0] - 1] != sub.block_hash:
                misplaced.append({"txid": txid, "acked": [sub.height, sub.block_hash], "chain": where})
        unsent = sum(1 for s in wl.submissions if s.outcome == "unsent")
        self.add("transactions submitted", f"{len(wl.submissions) - unsent} (+{unsent} refused: node down)")
        self.add("acknowledged committed", len(wl.acks))
        self.add("acknowledged found in chain", f"{len(wl.acks) - len(lost)}/{len(wl.acks)}", not lost)
        self.add("lost acknowledged transactions", len(lost), not lost,
                 f"acknowledged but not in the chain: {lost[:5]}")
        self.add("acknowledged at a different block", len(misplaced), not misplaced,
                 f"acknowledged at a block that is not in the chain: {misplaced[:3]}")
        unknown = [s for s in wl.submissions if s.outcome == "unknown"]
        late = sum(1 for s in unknown if s.txid in replay["txs"])
        self.add("unknown outcome (timeout/504)", f"{len(unknown)} (later committed {late}, "
                 f"never {len(unknown) - late})")
        rejected = Counter(s.code or str(s.status) for s in wl.submissions if s.outcome == "rejected")
        self.add("rejected", f"{sum(rejected.values())} " + (str(dict(rejected.most_common(4))) if rejected else ""))
        both = [p for p in wl.double_pairs if p[0] in replay["txs"] and p[1] in replay["txs"]]
        self.add("double-spend attempts: both committed", f"{len(both)} of {len(wl.double_pairs)}", not both)
        committed_by_workload = sum(1 for s in wl.submissions if s.txid in replay["txs"])
        self.add("workload transactions in chain", committed_by_workload)
        self.add("transactions in chain", len(replay["txs"]))

        # 5. reads
        unchecked = [r for r in wl.reads if r.height > top]
        wrong = [asdict(r) | {"chain": replay["balance_at"](r.address, r.height)} for r in wl.reads
                 if r.height <= top and replay["balance_at"](r.address, r.height) != r.balance]
        self.add("balance reads == chain state at reported height",
                 f"{len(wl.reads) - len(unchecked) - len(wrong)}/{len(wl.reads) - len(unchecked)}", not wrong,
                 f"reads that match no state of the chain: {wrong[:5]}")
        self.add("read-your-writes (min_height) violations", len(wl.ryw_violations), not wl.ryw_violations)

        self.lap("acknowledged and reads")

        # 6. evidence, and the validator set's changes
        await fault_checks.check_evidence(self)
        if self.nemesis.reconfig_runs:
            await reconfig_checks.check_reconfig(self)
        self.lap("evidence and validator sets")

        # 7. server errors, crashes, logs
        self.add("HTTP 500s seen by clients", len(wl.server_errors), not wl.server_errors,
                 f"server errors: {wl.server_errors[:3]}")
        self.add("nodes that died on their own", len(net.unexpected_exits), not net.unexpected_exits,
                 f"unexpected exits: {[(e['node'], e['exit_code']) for e in net.unexpected_exits]}")
        critical = self.scan_logs()
        self.add("CRITICAL / internal-error log lines", len(critical), not critical, f"log: {critical[:3]}")
        self.details["replay_heights"] = top
        self.lap("errors and logs")

        # 8. block times (BFT time under a skewed clock) and the tampering validator
        fault_checks.check_block_times(self, ref)
        fault_checks.check_tamper(self)
        self.lap("block times and tampering")


    def replay(self, blocks: list[dict]) -> dict:
        """``devnet.drill.replay.replay`` of this drill's genesis."""
        return replay(self.net.genesis, blocks)

    async def check_api_balances(self, top: int, replay: dict) -> tuple[list[int], list[dict], int]:
        """The balances of every account and every (once or future) validator's key at every height, asked of
        ``GET /v1/balances?height=h`` (in lists of at most ``MAX_BALANCES``), the heights spread over the nodes;
        the one-address route (``/v1/addresses/A/balance?height=h``) is asked too, for one address a height, so
        that over ``nodes x addresses`` heights every node is asked about every address."""
        net = self.net
        tracked = [encode_address(a) for a in net.account_addresses] + \
                  [encode_address(a) for a in net.validator_addresses.values()]
        lists = [tracked[i:i + MAX_BALANCES] for i in range(0, len(tracked), MAX_BALANCES)]
        sem = asyncio.Semaphore(8)
        bad_supply: list[int] = []
        mismatch: list[dict] = []
        queries = 0

        async def ask(node: str, path: str, params: dict) -> dict:
            nonlocal queries
            async with sem:
                r = await self.get(node, path, params)
            queries += 1
            if r.status_code != 200:
                raise RuntimeError(f"{node} {path} {params}: {r.status_code} {r.text[:200]}")
            return r.json()

        async def at_height(h: int) -> tuple[str, list[int], int]:
            node = net.names[h % len(net.names)]
            served: list[int] = []
            for addresses in lists:
                answer = await ask(node, "/v1/balances", {"addresses": ",".join(addresses), "height": h})
                if answer["height"] != h or [b["address"] for b in answer["balances"]] != addresses:
                    raise RuntimeError(f"{node} balances at height {h}: answered for height {answer['height']} "
                                       f"and {len(answer['balances'])} of {len(addresses)} addresses")
                served += [int(b["balance"]) for b in answer["balances"]]
            single = tracked[(h // len(net.names)) % len(tracked)]
            value = int((await ask(node, f"/v1/addresses/{single}/balance", {"height": h}))["balance"])
            if value != replay["balance_at"](single, h):
                mismatch.append({"node": node, "address": single, "height": h, "served": value,
                                 "route": "one address", "replay": replay["balance_at"](single, h)})
            return node, served, h

        for start in range(0, top + 1, 200):
            answers = await asyncio.gather(*(at_height(h) for h in range(start, min(top, start + 199) + 1)))
            for node, served, h in answers:
                for addr, value in zip(tracked, served, strict=True):
                    expected = replay["balance_at"](addr, h)
                    if value != expected:
                        mismatch.append({"node": node, "address": addr, "height": h, "served": value,
                                         "route": "many addresses", "replay": expected})
                if sum(served) != net.supply:
                    bad_supply.append(h)
        return bad_supply, mismatch, queries


    def scan_logs(self) -> list[str]:
        found = []
        for name in list(self.net.names) + ([TWIN_NAME] if TWIN_NAME in self.net.specs else []):
            path = self.net.specs[name].home / LOG_FILE
            if not path.exists():
                continue
            with open(path, errors="replace") as handle:
                for line in handle:
                    if " CRITICAL " in line or "internal error" in line:
                        found.append(f"{name}: {line.strip()[:300]}")
        return found
