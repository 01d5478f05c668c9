"""What the drill's workload clients record and know: each submission and each balance read (for the checks), and
the bank, their guide to which outputs they may spend (never trusted by the checks)."""

from __future__ import annotations

import random
from dataclasses import dataclass

from devnet.drill.network import DrillNetwork
from node.crypto import encode_address
from node.types.transaction import OutPoint


@dataclass
class Submission:
    txid: str
    node: str
    t: float
    inputs: list[tuple[str, int]]
    double: bool = False
    outcome: str = "in-flight"
    """ack, rejected, unsent, unknown (then late-commit or never-committed after the drill)."""
    status: int | None = None
    code: str = ""
    height: int | None = None
    block_hash: str | None = None


@dataclass
class Read:
    node: str
    address: str
    height: int
    balance: int
    t: float
    source: str = "balance"


class Bank:
    """Client-side knowledge of spendable outputs: only a guide for making mostly-valid transfers;
    the checks never trust it."""

    def __init__(self, net: DrillNetwork, rng: random.Random):
        self.net = net
        self.rng = rng
        self.keys = net.account_keys
        self.addresses = net.account_addresses
        self.texts = [encode_address(a) for a in self.addresses]
        self.available: dict[int, dict[OutPoint, int]] = {i: dict(outs) for i, outs in net.genesis_outputs().items()}
        self.busy: set[OutPoint] = set()
        self.spent: set[OutPoint] = set()
        self.limbo: dict[str, tuple[Submission, list[OutPoint], list[tuple[int, OutPoint, int]], int]] = {}
        """txid -> (submission, inputs, [(account, outpoint, amount)] outputs, misses)."""

    def take(self, account: int, count: int) -> list[tuple[OutPoint, int]]:
        pool = self.available[account]
        picks = self.rng.sample(sorted(pool, key=lambda o: (o.txid, o.index)), min(count, len(pool)))
        out = []
        for op in picks:
            out.append((op, pool.pop(op)))
            self.busy.add(op)
        return out

    def give_back(self, account: int, items: list[tuple[OutPoint, int]]) -> None:
        for op, amount in items:
            self.busy.discard(op)
            if op not in self.spent:
                self.available[account][op] = amount

    def settle(self, inputs: list[OutPoint], outputs: list[tuple[int, OutPoint, int]]) -> None:
        for op in inputs:
            self.busy.discard(op)
            self.spent.add(op)
        for account, op, amount in outputs:
            if op not in self.spent:
                self.available[account][op] = amount

    def forget(self, inputs: list[OutPoint]) -> None:
        for op in inputs:
            self.busy.discard(op)

    def refresh(self, account: int, utxos: list[dict]) -> None:
        fresh = {}
        for u in utxos:
            op = OutPoint(bytes.fromhex(u["txid"]), int(u["index"]))
            if op not in self.busy and op not in self.spent:
                fresh[op] = int(u["amount"])
        self.available[account] = fresh
