"""A real network of node processes on loopback for tests: start, wait, always stop (on ``devnet.cluster``)."""

from __future__ import annotations

import signal
from contextlib import contextmanager
from pathlib import Path

import httpx

from devnet.cluster import (
    STDOUT_FILE,
    NodeSpec,
    devnet_params,
    node_status,
    read_pid,
    same_chain,
    signal_node,
    start_nodes,
    stop_node,
    stop_nodes,
    wait_for_height,
    wait_stopped,
    write_network,
)
from genesis.build import make_devnet_genesis
from node.crypto import address_hash, derive_public_key
from node.types.transaction import OutPoint, Transaction, TxOutput, sign_transaction


class Network:
    """Homes and processes of a test network; ``close`` stops every process it started."""

    def __init__(self, base: Path, validators: int = 4, overrides: dict | None = None, params=None):
        self.genesis, self.validator_keys, self.wallets = make_devnet_genesis(
            validators, params=params or devnet_params(), demo_wallets=3)
        self.chain_id = self.genesis.chain_id
        self.specs: list[NodeSpec] = write_network(base, self.genesis, self.validator_keys,
                                                   config_overrides={"log_level": "DEBUG", **(overrides or {})})
        self.client = httpx.Client(timeout=30)

    def start(self, *indexes: int) -> None:
        start_nodes([self.specs[i] for i in indexes or range(len(self.specs))])

    def kill(self, i: int) -> None:
        signal_node(self.specs[i], signal.SIGKILL)
        assert wait_stopped(self.specs[i], 10)

    def stop(self, i: int) -> None:
        stop_node(self.specs[i])

    def close(self) -> None:
        try:
            stop_nodes(self.specs, timeout_s=5)
        except ProcessLookupError:
            pass
        self.client.close()

    def url(self, i: int) -> str:
        return self.specs[i].url

    def status(self, i: int) -> dict | None:
        return node_status(self.specs[i])

    def _specs(self, indexes) -> tuple[list[int], list[NodeSpec]]:
        indexes = list(indexes if indexes is not None else range(len(self.specs)))
        return indexes, [self.specs[i] for i in indexes]

    def wait_ready(self, indexes=None, timeout_s: float = 30) -> None:
        indexes, specs = self._specs(indexes)
        if not wait_for_height(specs, 0, timeout_s, watch_pids=False):
            raise AssertionError(f"nodes {indexes} not serving after {timeout_s}s; logs: {self.log_tail(indexes[0])}")

    def wait_height(self, height: int, indexes=None, timeout_s: float = 60) -> None:
        indexes, specs = self._specs(indexes)
        waited = wait_for_height(specs, height, timeout_s, watch_pids=False)
        if not waited:
            raise AssertionError(f"height {height} not reached by {indexes}: {waited.problem}")

    def assert_same_chain(self, height: int, indexes=None) -> None:
        """Every node in ``indexes`` holds the same block hash and app hash at every height up to ``height``."""
        _indexes, specs = self._specs(indexes)
        check = same_chain(specs, height)
        assert check.ok, check.describe()

    def log_tail(self, i: int, lines: int = 40) -> str:
        path = self.specs[i].home / STDOUT_FILE
        return "\n".join(path.read_text().splitlines()[-lines:]) if path.exists() else ""

    def pid(self, i: int) -> int | None:
        return read_pid(self.specs[i].home)

    # ------------------------------------------------------------------ transactions

    def address(self, wallet: str) -> bytes:
        return address_hash(derive_public_key(self.wallets[wallet]))

    def utxos(self, i: int, address_text: str) -> list[dict]:
        r = self.client.get(self.url(i) + f"/v1/addresses/{address_text}/utxos", params={"limit": 1000})
        r.raise_for_status()
        return r.json()["utxos"]

    def transfer(self, wallet: str, to: bytes, amount: int, fee: int = 1000, node: int = 0,
                 utxo: dict | None = None) -> Transaction:
        """A signed transfer from ``wallet`` spending one of its UTXOs (the first unless given)."""
        from node.crypto import encode_address
        key = self.wallets[wallet]
        if utxo is None:
            utxo = self.utxos(node, encode_address(self.address(wallet)))[0]
        change = utxo["amount"] - amount - fee
        outputs = [TxOutput(to, amount)]
        if change > 0:
            outputs.append(TxOutput(self.address(wallet), change))
        return sign_transaction(self.chain_id, [(OutPoint(bytes.fromhex(utxo["txid"]), utxo["index"]), key)], outputs)

    def submit(self, tx: Transaction, node: int = 0, wait: str = "mempool") -> httpx.Response:
        return self.client.post(self.url(node) + "/v1/txs", params={"wait": wait}, json={"tx": tx.encoded.hex()})


@contextmanager
def running_network(base: Path, validators: int = 4, start: bool = True, **kwargs):
    net = Network(base, validators, **kwargs)
    try:
        if start:
            net.start()
            net.wait_ready()
        yield net
    finally:
        net.close()
