"""BFT time in the node: a block's time is the weighted median of the precommit times in the commit it
carries (genesis time + 1 for the first block), proposals dated otherwise are rejected (``bad-blk-time``),
and a node whose clock is far off says so.  The last test runs four real processes with one validator's
clock ten years ahead."""

from __future__ import annotations

import time
from dataclasses import replace
from itertools import pairwise

import pytest

from devnet.cluster import devnet_params, write_network
from genesis.build import make_devnet_genesis
from node.config import NodeConfig, load_config, save_config
from node.consensus.bft_time import weighted_median_time
from node.consensus.certificate import build_commit
from node.consensus.messages import VoteType, sign_vote
from node.crypto import address_hash, derive_public_key
from node.ledger.errors import BlockError
from node.runtime import Node
from node.status import node_status
from node.types.block import Block
from node.types.commit import commit_hash
from tests.netutil import running_network

TEN_YEARS_MS = 10 * 365 * 24 * 3600 * 1000


@pytest.fixture
def node(tmp_path):
    genesis, keys, _ = make_devnet_genesis(4, params=devnet_params(), demo_wallets=1)
    specs = write_network(tmp_path, genesis, keys)
    n = Node(specs[0].home, load_config(specs[0].home))
    n.test_keys = list(keys.values())
    try:
        yield n
    finally:
        n.journal.close()
        n.store.close()


def precommits(node, height: int, block_hash: bytes, times: list[int], signers=None):
    keys = node.test_keys if signers is None else [node.test_keys[i] for i in signers]
    return [sign_vote(node.chain_id, k, address_hash(derive_public_key(k)), VoteType.PRECOMMIT, height, 0,
                      block_hash, t) for k, t in zip(keys, times, strict=True)]


def redated(block: Block, time_ms: int) -> bytes:
    return Block(replace(block.header, time_ms=time_ms), block.txs, block.last_commit).encode()


def bad_time_code(node, value: bytes) -> str:
    with pytest.raises(BlockError) as exc:
        node.application.check_chain_fields(Block.decode(value))
    return exc.value.code


def test_first_block_is_dated_genesis_plus_one_and_nothing_else(node):
    value = node.application.get_value(1, 0)
    block = Block.decode(value)
    assert block.header.time_ms == node.genesis.genesis_time_ms + 1
    assert node.application.is_valid(1, value)
    for other in (int(time.time() * 1000), node.genesis.genesis_time_ms + 2):
        assert not node.application.is_valid(1, redated(block, other))
        assert bad_time_code(node, redated(block, other)) == "bad-blk-time"


def test_a_proposal_dated_other_than_the_median_of_its_last_commit_is_rejected(node):
    value = node.application.get_value(1, 0)
    block = Block.decode(value)
    now = int(time.time() * 1000)
    times = [now, now + 10, now + 20, now + TEN_YEARS_MS]  # one validator's clock ten years ahead
    commit = build_commit(1, 0, block.hash, precommits(node, 1, block.hash, times))
    node._commit(block, commit, node.application.execute(block), 0)
    value2 = node.application.get_value(2, 0)
    block2 = Block.decode(value2)
    median = weighted_median_time(commit, node.validators)
    assert now + 10 <= median <= now + 20
    assert block2.header.time_ms == median
    assert node.application.is_valid(2, value2)
    # The proposer's own clock, the skewed validator's, or one millisecond off: all refused.
    for other in (now + 5_000, now + TEN_YEARS_MS, median + 1, median - 1):
        assert bad_time_code(node, redated(block2, other)) == "bad-blk-time"
        assert not node.application.is_valid(2, redated(block2, other))
    # Another valid certificate for the parent (three of the four) dates the block by its own median.
    subset = build_commit(1, 0, block.hash, precommits(node, 1, block.hash, times[1:], signers=[1, 2, 3]))
    header = replace(block2.header, time_ms=weighted_median_time(subset, node.validators),
                     last_commit_hash=commit_hash(subset))
    with_subset = Block(header, block2.txs, subset)
    assert with_subset.header.time_ms == now + 20
    node.application.check_chain_fields(with_subset)


def test_clock_config_keys():
    config = NodeConfig()
    assert config.clock_offset_ms == 0 and config.clock_skew_warn_ms == 10_000
    assert config.with_overrides({"clock_offset_ms": "-2500"}).clock_offset_ms == -2500


def test_clock_offset_shifts_the_node_clock_and_status_reports_it(node):
    assert abs(node.clock.now_ms() - time.time() * 1000) < 1_000
    clock = node_status(node)["clock"]
    assert clock["offset_ms"] is None and clock["skewed"] is False
    node.config = node.config.with_overrides({"clock_offset_ms": TEN_YEARS_MS})
    assert node.clock.now_ms() - time.time() * 1000 > TEN_YEARS_MS - 1_000
    assert node_status(node)["clock"]["injected_offset_ms"] == TEN_YEARS_MS


def test_a_far_off_clock_is_reported_and_logged_at_most_once_a_minute(node, caplog):
    block = Block.decode(node.application.get_value(1, 0))
    now = int(time.time() * 1000)
    # validator-0 (this node) against three others, one of them ten years ahead: this clock is fine
    times = [now, now - 20, now + 30, now + TEN_YEARS_MS]
    commit = build_commit(1, 0, block.hash, precommits(node, 1, block.hash, times))
    node.clock.observe(commit)
    clock = node_status(node)["clock"]
    assert clock["validators_seen"] == 3 and abs(clock["offset_ms"]) < 1_000 and clock["skewed"] is False
    # only two others seen so far, one far off: the middle value nearer this clock is taken
    node.clock.peer_offsets.clear()
    two_others = precommits(node, 1, block.hash, [now, now, now + TEN_YEARS_MS], signers=[0, 1, 3])
    node.clock.observe(build_commit(1, 0, block.hash, two_others))
    assert node_status(node)["clock"]["skewed"] is False
    # this node ten years ahead of everyone else
    node.config = node.config.with_overrides({"clock_offset_ms": TEN_YEARS_MS})
    with caplog.at_level("WARNING", logger="ledger.node"):
        for _ in range(3):
            node.clock.observe(commit)
    clock = node_status(node)["clock"]
    assert clock["skewed"] is True and clock["offset_ms"] > TEN_YEARS_MS - 60_000
    assert len([r for r in caplog.records if "clock" in r.getMessage()]) == 1


# ---------------------------------------------------------------------------- real processes


@pytest.mark.processes
def test_a_validator_ten_years_ahead_does_not_date_the_chain(tmp_path):
    with running_network(tmp_path, start=False) as net:
        skewed = net.specs[3]
        save_config(skewed.home, load_config(skewed.home).with_overrides({"clock_offset_ms": TEN_YEARS_MS}))
        started_ms = int(time.time() * 1000)
        net.start()
        net.wait_ready()
        net.wait_height(6, timeout_s=90)
        now_ms = int(time.time() * 1000)
        top = min(net.status(i)["height"] for i in range(4))
        blocks = net.client.get(net.url(0) + "/v1/blocks", params={"from": 1, "to": top}).json()["blocks"]
        times = [b["header"]["time_ms"] for b in blocks]
        assert times[0] == net.genesis.genesis_time_ms + 1
        for t in times[1:]:
            assert started_ms - 3_000 <= t <= now_ms + 3_000, (t - now_ms, times)
        assert all(b > a for a, b in pairwise(times))
        # validator-3's precommits (ten years ahead) are in the certificates: it takes part.
        address = net.status(3)["validator_address"]
        skewed_times = [s["time_ms"] for b in blocks[1:] for s in b["last_commit"]["signatures"]
                        if s["validator"] == address]
        assert skewed_times and all(t > now_ms + TEN_YEARS_MS - 60_000 for t in skewed_times)
        # It knows its clock is off; the others do not think theirs is.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (net.status(3)["clock"] or {}).get("skewed"):
            time.sleep(0.2)
        clock = net.status(3)["clock"]
        assert clock["skewed"] is True and clock["offset_ms"] > TEN_YEARS_MS - 60_000, clock
        for i in range(3):
            other = net.status(i)["clock"]
            assert other["skewed"] is False and abs(other["offset_ms"]) < 10_000, other
        log = (skewed.home / "node.log").read_text()
        warnings = [line for line in log.splitlines() if "WARNING" in line and "clock: this node's clock is" in line]
        assert len(warnings) == 1, warnings  # once a minute at most
