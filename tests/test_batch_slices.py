"""A client's batch is admitted a slice at a time (``node.api.tx_routes``): work that arrives while a large batch
is checked (a vote, a proposal) runs between its slices instead of after all of them, and each slice is journaled
before the next is checked."""

from __future__ import annotations

import asyncio
import types

import httpx

from node.api.app import create_app
from node.api.tx_routes import BATCH_SLICE
from node.config import NodeConfig
from tests.ledger.ledger_helpers import CHAIN, addr, gen_op, key, transfer


class SliceAdmission:
    """Records the slices it is handed and what was journaled when each came."""

    def __init__(self):
        self.slices: list[int] = []
        self.journaled = 0

    def admit_client_txs(self, txs):
        assert self.journaled == sum(self.slices)  # the slice before was journaled before this one came
        self.slices.append(len(txs))
        self.journaled += len(txs)
        return [True] * len(txs)


def test_a_large_batch_is_admitted_a_slice_at_a_time_between_other_work():
    txs = [transfer([(gen_op(i), key(i))], [(addr(key(1000 + i)), 10)]).encoded.hex() for i in range(200)]
    items = txs[:100] + ["zz"] + txs[100:]  # a bad item keeps its place in the results
    admission = SliceAdmission()
    node = types.SimpleNamespace(config=NodeConfig(), chain_id=CHAIN, admission=admission,
                                 sync=types.SimpleNamespace(catching_up=False))
    app = create_app(node)
    seen: list[int] = []  # slices admitted each time other work got a turn

    async def other_work():
        for _ in range(200):
            seen.append(len(admission.slices))
            await asyncio.sleep(0)

    async def scenario():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://node") as client:
            response, _ = await asyncio.gather(client.post("/v1/txs/batch", json={"txs": items}), other_work())
        return response

    response = asyncio.run(scenario())
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["accepted"], body["rejected"]) == (200, 1)
    assert [r["status"] for r in body["results"]] == ["accepted"] * 100 + ["rejected"] + ["accepted"] * 100
    assert body["results"][100]["code"] == "bad-hex"
    assert sum(admission.slices) == 200 and max(admission.slices) <= BATCH_SLICE
    assert len(admission.slices) == -(-len(items) // BATCH_SLICE)
    final = len(admission.slices)
    assert any(0 < n < final for n in seen), seen  # other work ran while the batch was part way through
