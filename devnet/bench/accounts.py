"""The bench's accounts and their funds: a fresh genesis with the slots (and extra UTXOs) and its node homes,
or, with ``--attach``, a running devnet's faucet fanning its coins out to the slots."""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

import httpx

from devnet.bench.options import BenchError, Options, bench_params, default_slots, transfer_budget
from devnet.bench.workload import FEE, Workload, slot_amount
from devnet.cluster import NodeSpec, write_homes, write_network
from devnet.cluster.netns import new_netns_network
from genesis.build import make_genesis
from node.crypto import SigningKey, address_hash, encode_address, generate_private_key
from node.ledger.state import genesis_outpoint
from node.types.transaction import ZERO_SIGNATURE, OutPoint, Transaction, TxInput, TxOutput, signing_digest

CHAIN_ID = "bench"
NETNS_PORT = 26657
"""With ``--netns`` every node has its own address: REST on this port, p2p 1000 above."""
EXTRA_UTXO_AMOUNT = 1
EXTRA_UTXO_OWNERS = 1_000
"""The ``--utxos`` outputs belong to this many addresses nobody holds a key for."""


class Signer(SigningKey):
    """One account: ``node.crypto.SigningKey`` (its key parsed once, so signing is fast) and its address."""

    __slots__ = ("address",)

    def __init__(self, private_key: bytes):
        super().__init__(private_key)
        self.address = address_hash(self.public_key)


# --------------------------------------------------------------------------- a fresh devnet


def build_fresh(opts: Options, base: Path, log) -> tuple[list[NodeSpec], Workload, dict]:
    """Genesis with the slots and extra UTXOs, node homes, and the workload's first transfers."""
    timings: dict[str, float] = {}
    t = time.perf_counter()
    n_slots = default_slots(opts)
    first, whole = transfer_budget(opts)
    per_slot = math.ceil(whole / n_slots * 1.25) + 2
    signers = [Signer(generate_private_key()) for _ in range(opts.accounts)]
    amount = slot_amount(per_slot)
    allocations: list[tuple[bytes, int]] = [(signers[i % len(signers)].address, amount) for i in range(n_slots)]
    sinks = [os.urandom(20) for _ in range(min(EXTRA_UTXO_OWNERS, max(opts.utxos, 1)))]
    allocations.extend((sinks[i % len(sinks)], EXTRA_UTXO_AMOUNT) for i in range(opts.utxos))
    try:
        genesis, validator_keys = make_genesis(CHAIN_ID, opts.validators, allocations, bench_params(opts.params))
    except ValueError as exc:  # GenesisError: a parameter out of its range
        raise BenchError(f"bad genesis: {exc}") from None
    timings["genesis_s"] = time.perf_counter() - t
    log(f"genesis: {opts.validators} validators, {n_slots} slots for {opts.accounts} accounts, "
        f"{opts.utxos} extra UTXOs")
    t = time.perf_counter()
    overrides = {"log_level": "INFO", **opts.overrides}
    if opts.netns:  # recorded in base/netns.json; created (and removed) by the bench's run
        specs = write_homes(base, genesis, validator_keys,
                            new_netns_network(base, list(validator_keys), NETNS_PORT), overrides)
    else:
        specs = write_network(base, genesis, validator_keys, config_overrides=overrides)
    timings["init_s"] = time.perf_counter() - t
    workload = Workload(genesis.chain_id, signers, len(specs), opts.steady_state)
    for i in range(n_slots):
        workload.add_slot(i % len(signers), genesis_outpoint(genesis.chain_id, i), amount)
    return specs, workload, timings


# --------------------------------------------------------------------------- attaching to a running devnet


def find_faucet_key(base: Path, explicit: Path | None) -> bytes:
    candidates = [explicit] if explicit else [base / "wallets" / "faucet.json", base / "faucet.json",
                                              *sorted(base.rglob("faucet*.json"))]
    for path in candidates:
        if path is None or not path.exists():
            continue
        try:
            obj = json.loads(path.read_text())
        except ValueError:
            continue
        key = obj.get("private_key") if isinstance(obj, dict) else None
        if isinstance(key, str):
            return bytes.fromhex(key)
    raise BenchError(f"no unencrypted faucet wallet found under {base}; pass --faucet FILE")


def fund_attached(opts: Options, specs: list[NodeSpec], chain_id: str, faucet_key: bytes, log) -> Workload:
    """A funding phase (only with --attach): fan the faucet's coins out to the slots, wait for commit."""
    n_slots = default_slots(opts)
    _first, whole = transfer_budget(opts)
    per_slot = math.ceil(whole / n_slots * 1.25) + 2
    amount = slot_amount(per_slot)
    signers = [Signer(generate_private_key()) for _ in range(opts.accounts)]
    faucet = Signer(faucet_key)
    client = httpx.Client(timeout=30)
    try:
        r = client.get(specs[0].url + f"/v1/addresses/{encode_address(faucet.address)}/utxos",
                       params={"limit": 1000})
        r.raise_for_status()
        utxos = sorted(r.json()["utxos"], key=lambda u: -u["amount"])
        if not utxos:
            raise BenchError("the faucet has no unspent outputs")
        prev = OutPoint(bytes.fromhex(utxos[0]["txid"]), utxos[0]["index"])
        have = utxos[0]["amount"]
        fan = 500
        txs: list[Transaction] = []
        origins: list[tuple[int, OutPoint]] = []
        made = 0
        while made < n_slots:
            count = min(fan, n_slots - made)
            change = have - count * amount - FEE
            if change <= 0:
                raise BenchError(f"the faucet's largest output ({have}) cannot fund {n_slots} slots of {amount}")
            outputs = [TxOutput(signers[(made + i) % len(signers)].address, amount) for i in range(count)]
            outputs.append(TxOutput(faucet.address, change))
            unsigned = Transaction((TxInput(prev, faucet.public_key, ZERO_SIGNATURE),), tuple(outputs))
            sig = faucet.sign(signing_digest(unsigned, chain_id))
            tx = Transaction((TxInput(prev, faucet.public_key, sig),), tuple(outputs))
            txs.append(tx)
            origins.extend(((made + i) % len(signers), OutPoint(tx.txid, i)) for i in range(count))
            made += count
            prev, have = OutPoint(tx.txid, count), change
        r = client.post(specs[0].url + "/v1/txs/batch", json={"txs": [tx.encoded.hex() for tx in txs]})
        r.raise_for_status()
        bad = [x for x in r.json()["results"] if x["status"] not in ("accepted", "committed")]
        if bad:
            raise BenchError(f"funding transaction refused: {bad[0]}")
        deadline = time.monotonic() + 120
        for tx in txs:
            while True:
                r = client.get(specs[0].url + f"/v1/txs/{tx.txid.hex()}")
                if r.status_code == 200 and r.json().get("status") == "committed":
                    break
                if time.monotonic() > deadline:
                    raise BenchError("funding transactions did not commit within 120 s")
                time.sleep(0.2)
        log(f"funded {n_slots} slots with {len(txs)} fan-out transactions")
    finally:
        client.close()
    workload = Workload(chain_id, signers, len(specs), opts.steady_state)
    for owner, outpoint in origins:
        workload.add_slot(owner, outpoint, amount)
    return workload

