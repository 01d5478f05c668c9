"""A client's batch is admitted a slice at a time (``node.api.tx_routes``): work that arrives while a large batch
is checked (a vote, a proposal) runs between its slices instead of after all of them, and whatever a client was
told is pending is in the mempool journal (``node.admission``), however requests and peers interleave."""

from __future__ import annotations

import asyncio
import types

import httpx
import pytest

from node.admission import Admission
from node.api.app import create_app
from node.api.tx_routes import BATCH_SLICE
from node.config import NodeConfig
from node.ledger.memory import MemoryState
from node.ledger.rules import SignatureCache
from node.mempool import Mempool, MempoolJournal
from node.types.transaction import Transaction
from tests.cycles import cycles_left_by
from tests.ledger.ledger_helpers import CHAIN, addr, allocations, gen_op, key, transfer


class Journal(MempoolJournal):
    """The real journal, recording the size of each append (and failing one on request)."""

    def __init__(self, path: str):
        super().__init__(path)
        self.appends: list[int] = []
        self.fail_next = False

    def append(self, raw_txs: list[bytes]) -> None:
        if self.fail_next:
            self.fail_next = False
            raise OSError(28, "No space left on device")
        super().append(raw_txs)
        if raw_txs:
            self.appends.append(len(raw_txs))


def make_admission(tmp_path, accounts: int) -> tuple[Admission, Journal, list[list[bytes]]]:
    state = MemoryState()
    state.initialize_genesis(CHAIN, b"\x00" * 32, allocations(accounts), b"genesis")
    pool = Mempool(state, CHAIN, SignatureCache(), 100_000, 10**8, 100, 0)
    journal = Journal(str(tmp_path / "mempool.journal"))
    sent: list[list[bytes]] = []
    store = types.SimpleNamespace(get_tx_location=lambda txid: None)
    return Admission(store, pool, journal, sent.append), journal, sent  # type: ignore[arg-type]


def pay(i: int) -> str:
    return transfer([(gen_op(i), key(i))], [(addr(key(1000 + i)), 900_000)]).encoded.hex()


def on_disk(tmp_path) -> set[str]:
    return {raw.hex() for raw in MempoolJournal(str(tmp_path / "mempool.journal")).recovered}


def test_batches_are_admitted_a_slice_at_a_time_and_every_pending_transaction_is_journaled(tmp_path):
    admission, journal, _ = make_admission(tmp_path, 450)
    first, second = [pay(i) for i in range(200)], [pay(i) for i in range(200, 400)]
    first.insert(100, "zz")  # a bad item keeps its place in the results
    single = pay(400)
    node = types.SimpleNamespace(config=NodeConfig(), chain_id=CHAIN, admission=admission,
                                 sync=types.SimpleNamespace(catching_up=False))
    app = create_app(node)
    turns: list[int] = []  # transactions admitted each time other work got a turn

    async def other_work():
        for _ in range(200):
            pending = {entry.tx.encoded.hex() for entry in admission.mempool.entries.values()}
            assert pending <= on_disk(tmp_path)  # nothing in the pool is unjournaled between two slices
            turns.append(len(pending))
            await asyncio.sleep(0)

    async def scenario():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://node") as client:
            return await asyncio.gather(client.post("/v1/txs/batch", json={"txs": first}),
                                        client.post("/v1/txs/batch", json={"txs": second}),
                                        client.post("/v1/txs", json={"tx": single}), other_work())

    one, two, alone, _ = asyncio.run(scenario())
    assert one.status_code == two.status_code == 200 and alone.status_code == 202, (one.text, two.text)
    body = one.json()
    assert (body["accepted"], body["rejected"]) == (200, 1)
    assert [r["status"] for r in body["results"]] == ["accepted"] * 100 + ["rejected"] + ["accepted"] * 100
    assert body["results"][100]["code"] == "bad-hex"
    assert two.json()["accepted"] == 200
    assert on_disk(tmp_path) == set(first[:100] + first[101:] + second + [single])
    assert max(journal.appends) <= BATCH_SLICE  # a slice at a time, each journaled before the next
    assert any(0 < n < 400 for n in turns), turns  # other work ran while the batches were part way through


def test_a_peer_transaction_a_client_submits_is_journaled_before_it_is_acknowledged(tmp_path):
    admission, _, sent = make_admission(tmp_path, 3)
    tx = bytes.fromhex(pay(0))
    assert admission.receive_peer_txs([tx])["admitted"] == 1
    assert on_disk(tmp_path) == set()  # a peer's transaction is not journaled
    decoded = Transaction.decode(tx)
    assert admission.admit_client_txs([decoded]) == [False]  # already pending: acknowledged...
    assert on_disk(tmp_path) == {tx.hex()}  # ...once on disk
    assert sent == [[tx]]
    admission.admit_client_txs([decoded])
    assert sent == [[tx], []]  # journaled and relayed once


def test_a_transaction_whose_append_failed_is_journaled_by_the_retry(tmp_path):
    admission, journal, sent = make_admission(tmp_path, 3)
    tx = Transaction.decode(bytes.fromhex(pay(1)))
    journal.fail_next = True
    with pytest.raises(OSError):
        admission.admit_client_txs([tx])
    assert on_disk(tmp_path) == set() and sent == []  # pending, but neither acknowledged nor relayed
    assert admission.admit_client_txs([tx]) == [False]
    assert on_disk(tmp_path) == {tx.encoded.hex()} and sent == [[tx.encoded]]


def test_a_node_that_starts_catching_up_part_way_refuses_the_rest_of_a_batch(tmp_path):
    admission, _, _ = make_admission(tmp_path, 100)
    txs = [pay(i) for i in range(100)]
    sync = types.SimpleNamespace(catching_up=False)
    app = create_app(types.SimpleNamespace(config=NodeConfig(), chain_id=CHAIN, admission=admission, sync=sync))

    async def fall_behind():
        for _ in range(100):
            if admission.mempool.entries:
                sync.catching_up = True
                return
            await asyncio.sleep(0)

    async def scenario():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://node") as client:
            return (await asyncio.gather(client.post("/v1/txs/batch", json={"txs": txs}), fall_behind()))[0]

    body = asyncio.run(scenario()).json()
    statuses = [r["status"] for r in body["results"]]
    assert statuses == ["accepted"] * BATCH_SLICE + ["rejected"] * (100 - BATCH_SLICE)
    assert {r["code"] for r in body["results"][BATCH_SLICE:]} == {"catching-up"}
    assert len(admission.mempool.entries) == BATCH_SLICE == body["accepted"]


def _not_the_test_clients(obj: object) -> bool:
    """The in-memory test client (httpx over ASGI) leaves cycles of its own."""
    return type(obj).__module__.startswith("httpx") or type(obj) in (tuple, list, dict)


def test_refused_transactions_leave_no_reference_cycle(tmp_path):
    """A refusal kept in a batch's results held the frames that raised it, and they held the results: a cycle
    per refused transaction, with the whole batch in it, which a node frozen between refreeze rounds kept for
    minutes.  Refused singly, in a batch, or straight through the admission: nothing is left behind."""
    admission, _, _ = make_admission(tmp_path, 60)
    admission.admit_client_txs([Transaction.decode(bytes.fromhex(pay(i))) for i in range(30)])

    def conflict(i: int) -> Transaction:
        return transfer([(gen_op(i), key(i))], [(addr(key(3000 + i)), 800_000)])

    def direct() -> None:
        results = admission.admit_client_txs([conflict(i) for i in range(10)])
        assert all(getattr(r, "code", None) == "txn-mempool-conflict" for r in results)

    assert cycles_left_by(direct) == []
    app = create_app(types.SimpleNamespace(config=NodeConfig(), chain_id=CHAIN, admission=admission,
                                           sync=types.SimpleNamespace(catching_up=False)))

    async def over_rest() -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://node") as client:
            batch = await client.post("/v1/txs/batch", json={"txs": [conflict(i).encoded.hex() for i in range(10, 20)]})
            single = await client.post("/v1/txs", json={"tx": conflict(20).encoded.hex()})
        assert batch.json()["rejected"] == 10 and single.status_code == 409

    assert cycles_left_by(lambda: asyncio.run(over_rest()), ignore=_not_the_test_clients) == []
