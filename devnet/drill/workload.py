"""The drill's workload, Jepsen's bank: concurrent clients move coins between accounts and read balances.

Clients send random transfers (sometimes two inputs, sometimes a deliberate
double spend sent to two nodes at once) to random nodes with
``?wait=commit``, and read balances (half of them with ``min_height``).
Every acknowledgement (HTTP 200 "committed" with height and block hash) and
every balance read (node, the height it reported, the balance) is recorded
for the checks; a resolver asks about transfers whose outcome is unknown.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter

import httpx

from devnet.drill.bank import Bank, Read, Submission
from devnet.drill.network import COMMIT_WAIT_MS, MIN_HEIGHT_WAIT_MS, DrillNetwork
from node.types.transaction import OutPoint, TxOutput, sign_transaction

COMMIT_WAIT_S = COMMIT_WAIT_MS / 1000
SUBMIT_TIMEOUT = httpx.Timeout(COMMIT_WAIT_S + 5, connect=2.0)
READ_TIMEOUT = httpx.Timeout(MIN_HEIGHT_WAIT_MS / 1000 + 4, connect=2.0)


class Workload:
    """Concurrent bank clients, a resolver for unknown outcomes, and the record of everything they saw."""

    def __init__(self, net: DrillNetwork, seed: int, clients: int, out=print):
        self.net = net
        self.rng = random.Random(f"drill-workload-{seed}")
        self.bank = Bank(net, self.rng)
        self.clients = clients
        self.out = out
        self.submissions: list[Submission] = []
        self.acks: dict[str, Submission] = {}
        self.reads: list[Read] = []
        self.server_errors: list[dict] = []
        self.ryw_violations: list[dict] = []
        self.double_pairs: list[tuple[str, str]] = []
        self.counts: Counter = Counter()
        self.stop = asyncio.Event()
        self.t0 = time.monotonic()
        self.http: httpx.AsyncClient | None = None

    def now(self) -> float:
        return time.monotonic() - self.t0

    def _node(self) -> str:
        return self.rng.choice(self.net.names)

    def _server_error(self, node: str, method: str, path: str, response: httpx.Response) -> None:
        try:
            body = response.json()
        except ValueError:
            body = response.text[:300]
        self.server_errors.append({"node": node, "method": method, "path": path, "status": response.status_code,
                                   "body": body, "t": round(self.now(), 2)})

    async def submit(self, sub: Submission, tx_hex: str) -> None:
        """POST ?wait=commit to sub.node and classify the outcome."""
        assert self.http is not None
        url = self.net.url(sub.node) + "/v1/txs"
        try:
            r = await self.http.post(url, params={"wait": "commit"}, json={"tx": tx_hex}, timeout=SUBMIT_TIMEOUT)
        except httpx.ConnectError:
            sub.outcome = "unsent"
            return
        except (httpx.HTTPError, OSError) as exc:
            sub.outcome = "unknown"
            sub.code = type(exc).__name__
            return
        sub.status = r.status_code
        try:
            body = r.json()
        except ValueError:
            body = {}
        if r.status_code == 200 and body.get("status") == "committed":
            sub.outcome = "ack"
            sub.height = int(body["height"])
            sub.block_hash = body["block_hash"]
            return
        sub.code = (body.get("error") or {}).get("code", "") if isinstance(body, dict) else ""
        if r.status_code >= 500 and r.status_code not in (503, 504):
            self._server_error(sub.node, "POST", "/v1/txs", r)
        if r.status_code in (504,) or r.status_code >= 500 and r.status_code != 503:
            sub.outcome = "unknown"  # admitted (or maybe admitted), not seen committed in time
        elif r.status_code == 409 and sub.code == "txn-mempool-conflict":
            sub.outcome = "rejected"
        else:
            sub.outcome = "rejected"

    def _build(self, account: int, inputs: list[tuple[OutPoint, int]], dest: int, fraction: float):
        total = sum(a for _, a in inputs)
        fee = self.rng.randint(100, 2_000)
        spendable = total - fee
        if spendable < 2:
            return None
        amount = max(1, int(spendable * fraction))
        change = spendable - amount
        outputs = [TxOutput(self.bank.addresses[dest], amount)]
        if change > 0:
            outputs.append(TxOutput(self.bank.addresses[account], change))
        tx = sign_transaction(self.net.chain_id, [(op, self.bank.keys[account]) for op, _ in inputs], outputs)
        outs = [(dest, OutPoint(tx.txid, 0), amount)]
        if change > 0:
            outs.append((account, OutPoint(tx.txid, 1), change))
        return tx, outs

    def _after(self, sub: Submission, account: int, inputs: list[tuple[OutPoint, int]], outs) -> None:
        ops = [op for op, _ in inputs]
        self.counts[sub.outcome] += 1
        if sub.outcome == "ack":
            self.acks[sub.txid] = sub
            self.bank.settle(ops, outs)
        elif sub.outcome == "unsent":
            self.bank.give_back(account, inputs)
        elif sub.outcome == "unknown":
            self.bank.limbo[sub.txid] = (sub, ops, outs, 0)
        else:  # rejected: spent elsewhere, conflicting, or catching up; let a refresh tell
            if sub.code in ("catching-up", "mempool-full"):
                self.bank.give_back(account, inputs)
            else:
                self.bank.forget(ops)

    async def transfer(self) -> None:
        bank = self.bank
        candidates = [i for i, pool in bank.available.items() if pool]
        if not candidates:
            await self.refresh(self.rng.randrange(len(bank.keys)))
            await asyncio.sleep(0.2)
            return
        account = self.rng.choice(candidates)
        inputs = bank.take(account, 2 if self.rng.random() < 0.15 else 1)
        dest = self.rng.choice([i for i in range(len(bank.keys)) if i != account])
        built = self._build(account, inputs, dest, self.rng.choice([0.05, 0.3, 0.5, 0.9]))
        if built is None:
            bank.forget([op for op, _ in inputs])
            return
        tx, outs = built
        sub = Submission(tx.txid.hex(), self._node(), round(self.now(), 3),
                         [(op.txid.hex(), op.index) for op, _ in inputs])
        self.submissions.append(sub)
        await self.submit(sub, tx.encoded.hex())
        self._after(sub, account, inputs, outs)
        if sub.outcome == "unsent":
            await asyncio.sleep(self.rng.uniform(0.1, 0.4))

    async def double_spend(self) -> None:
        """Two transfers spending the same output, sent at once to two different nodes: at most one may commit."""
        bank = self.bank
        candidates = [i for i, pool in bank.available.items() if pool]
        if not candidates or len(self.net.names) < 2:
            return
        account = self.rng.choice(candidates)
        inputs = bank.take(account, 1)
        dests = self.rng.sample([i for i in range(len(bank.keys)) if i != account], 2)
        a = self._build(account, inputs, dests[0], 0.3)
        b = self._build(account, inputs, dests[1], 0.6)
        if a is None or b is None:
            bank.forget([op for op, _ in inputs])
            return
        nodes = self.rng.sample(self.net.names, 2)
        subs = [Submission(tx.txid.hex(), node, round(self.now(), 3),
                           [(op.txid.hex(), op.index) for op, _ in inputs], double=True)
                for (tx, _), node in zip((a, b), nodes, strict=True)]
        await asyncio.gather(self.submit(subs[0], a[0].encoded.hex()), self.submit(subs[1], b[0].encoded.hex()))
        self.submissions.extend(subs)
        if any(s.outcome != "unsent" for s in subs):
            self.double_pairs.append((subs[0].txid, subs[1].txid))
        ops = [op for op, _ in inputs]
        acked = [(s, built) for s, built in zip(subs, (a, b), strict=True) if s.outcome == "ack"]
        for s in subs:
            self.counts[s.outcome] += 1
            if s.outcome == "ack":
                self.acks[s.txid] = s
        if acked:
            for _, built in acked:
                bank.settle(ops, built[1])
        else:
            unknown = [(s, built) for s, built in zip(subs, (a, b), strict=True) if s.outcome == "unknown"]
            for s, built in unknown:
                bank.limbo[s.txid] = (s, ops, built[1], 0)
            if not unknown:
                if all(s.outcome == "unsent" for s in subs):
                    bank.give_back(account, inputs)
                    await asyncio.sleep(self.rng.uniform(0.1, 0.4))
                else:
                    bank.forget(ops)

    async def read_balance(self, min_height: int | None = None) -> None:
        assert self.http is not None
        node = self._node()
        account = self.rng.randrange(len(self.bank.keys))
        text = self.bank.texts[account]
        params = {"min_height": min_height} if min_height is not None else {}
        try:
            r = await self.http.get(self.net.url(node) + f"/v1/addresses/{text}/balance", params=params,
                                    timeout=READ_TIMEOUT)
        except (httpx.HTTPError, OSError):
            self.counts["read failed"] += 1
            return
        if r.status_code == 200:
            body = r.json()
            self.reads.append(Read(node, text, int(body["height"]), int(body["balance"]), round(self.now(), 3)))
            if min_height is not None and int(body["height"]) < min_height:
                self.ryw_violations.append({"node": node, "min_height": min_height, "height": body["height"]})
        elif r.status_code >= 500 and r.status_code != 503:
            self._server_error(node, "GET", "/v1/addresses/{a}/balance", r)
        else:
            self.counts["read refused"] += 1

    async def refresh(self, account: int) -> None:
        """Learn an account's unspent outputs from a random node (also a balance read: their sum at that height)."""
        assert self.http is not None
        node = self._node()
        text = self.bank.texts[account]
        try:
            r = await self.http.get(self.net.url(node) + f"/v1/addresses/{text}/utxos", params={"limit": 1000},
                                    timeout=READ_TIMEOUT)
        except (httpx.HTTPError, OSError):
            return
        if r.status_code != 200:
            if r.status_code >= 500 and r.status_code != 503:
                self._server_error(node, "GET", "/v1/addresses/{a}/utxos", r)
            return
        body = r.json()
        if body.get("next") is None:
            self.reads.append(Read(node, text, int(body["height"]), sum(int(u["amount"]) for u in body["utxos"]),
                                   round(self.now(), 3), source="utxos"))
        self.bank.refresh(account, body["utxos"])

    async def client(self, cid: int, deadline: float) -> None:
        last_ack_height = 0
        for _ in range(1_000_000):
            if self.stop.is_set() or time.monotonic() >= deadline:
                return
            roll = self.rng.random()
            try:
                if roll < 0.25:
                    await self.read_balance(last_ack_height if last_ack_height and self.rng.random() < 0.5 else None)
                    await asyncio.sleep(self.rng.uniform(0.02, 0.1))
                elif roll < 0.28 and deadline - time.monotonic() > COMMIT_WAIT_S:
                    await self.double_spend()  # (its loser waits out the commit wait: none starts in the last one)
                elif roll < 0.31:
                    await self.refresh(self.rng.randrange(len(self.bank.keys)))
                else:
                    before = len(self.acks)
                    await self.transfer()
                    if len(self.acks) > before:
                        last_ack_height = max(s.height or 0 for s in list(self.acks.values())[before:])
            except Exception as exc:  # noqa: BLE001  (a workload bug is counted and printed; the drill goes on)
                self.client_error(f"client {cid}", exc)
                await asyncio.sleep(0.5)

    def client_error(self, who: str, exc: BaseException) -> None:
        """An exception a workload task did not expect (a workload bug, or an answer it cannot read): counted in
        the report's ``counts`` and printed, never swallowed."""
        self.counts[f"client error {type(exc).__name__}"] += 1
        self.out(f"!! {who}: {type(exc).__name__}: {exc}")

    async def reader(self, deadline: float) -> None:
        """A client that only reads balances, about ten a second, half of them with ``min_height``."""
        for _ in range(1_000_000):
            if self.stop.is_set() or time.monotonic() >= deadline:
                return
            acked = [s.height for s in list(self.acks.values())[-5:] if s.height]
            floor = max(acked) if acked and self.rng.random() < 0.5 else None
            try:
                await self.read_balance(floor)
            except Exception as exc:  # noqa: BLE001  (counted and printed by client_error; reads go on)
                self.client_error("reader", exc)
            await asyncio.sleep(self.rng.uniform(0.05, 0.15))

    async def resolve_once(self, limit: int = 20) -> None:
        """Ask a node about transactions whose outcome is unknown."""
        assert self.http is not None
        now = self.now()
        for txid in list(self.bank.limbo)[:limit]:
            sub, inputs, outs, misses = self.bank.limbo[txid]
            if now - sub.t < 3:
                continue
            node = self._node()
            try:
                r = await self.http.get(self.net.url(node) + f"/v1/txs/{txid}", timeout=READ_TIMEOUT)
            except (httpx.HTTPError, OSError):
                continue
            if r.status_code == 200 and r.json().get("status") == "committed":
                del self.bank.limbo[txid]
                self.bank.settle(inputs, outs)
            elif r.status_code == 404:
                misses += 1
                if misses >= 3 and now - sub.t > 45:
                    del self.bank.limbo[txid]
                    self.bank.forget(inputs)
                else:
                    self.bank.limbo[txid] = (sub, inputs, outs, misses)
            elif r.status_code >= 500 and r.status_code != 503:
                self._server_error(node, "GET", "/v1/txs/{txid}", r)

    async def resolver(self, deadline: float) -> None:
        for _ in range(100_000):
            if self.stop.is_set() or time.monotonic() >= deadline:
                return
            await asyncio.sleep(2)
            try:
                await self.resolve_once()
            except Exception as exc:  # noqa: BLE001  (counted and printed by client_error; resolving goes on)
                self.client_error("resolver", exc)

    async def run(self, duration_s: float) -> None:
        deadline = time.monotonic() + duration_s
        tasks = [asyncio.create_task(self.client(i, deadline), name=f"client-{i}") for i in range(self.clients)]
        tasks.append(asyncio.create_task(self.resolver(deadline), name="resolver"))
        tasks.append(asyncio.create_task(self.reader(deadline), name="reader"))
        try:
            _, pending = await asyncio.wait(tasks, timeout=duration_s + COMMIT_WAIT_S + 15)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            for task in tasks:  # each task catches its own errors: one that still ended in one is reported
                if not task.cancelled() and (exc := task.exception()) is not None:
                    self.client_error(task.get_name(), exc)
        finally:
            self.stop.set()
