"""Swapping a state-synced store in: a crash at any step leaves the old state or the new one, never a half one,
and a request the node has gone past is forgotten.  Real LevelDB stores; the steps of ``swap_in`` are cut
short by hand where a crash would cut them."""

from __future__ import annotations

import shutil
from pathlib import Path

from node.config import DATA_DIR
from node.ledger.store import Store
from node.state_sync_home import (
    OLD_STORE,
    finish_swap,
    needs_state_sync,
    new_store_path,
    read_request,
    request_state_sync,
    state_sync_dir,
    store_height,
    swap_in,
)
from tests.ledger.ledger_helpers import CHAIN, allocations
from tests.ledger.test_pruning import commit_block
from tests.ledger.test_reconfig_rules import validator_set


def make_store(path: Path, heights: int) -> None:
    with Store.open(str(path)) as store:
        store.initialize_genesis(CHAIN, b"G" * 32, allocations(2, 1_000), b"{}",
                                 validators=validator_set(10, 10, 10, 10))
        for _ in range(heights):
            commit_block(store)


def test_an_empty_store_syncs_only_when_enabled(tmp_path):
    Store.open(str(tmp_path / DATA_DIR)).close()
    assert needs_state_sync(tmp_path, enabled=False) == (False, 0)
    assert needs_state_sync(tmp_path, enabled=True) == (True, 0)


def test_a_request_makes_a_node_with_state_sync_and_is_forgotten_once_passed(tmp_path):
    make_store(tmp_path / DATA_DIR, 3)
    assert needs_state_sync(tmp_path, enabled=False) == (False, 3)
    request_state_sync(tmp_path, 3, 40)
    assert read_request(tmp_path) == {"height": 3, "earliest": 40}
    assert needs_state_sync(tmp_path, enabled=False) == (True, 3)
    finish_swap(tmp_path)  # still at 3: the request stands
    assert read_request(tmp_path) is not None
    shutil.rmtree(tmp_path / DATA_DIR)
    make_store(tmp_path / DATA_DIR, 5)  # the new state came in, and a crash hit before the request was removed
    finish_swap(tmp_path)
    assert read_request(tmp_path) is None and needs_state_sync(tmp_path, enabled=False) == (False, 5)


def test_swap_replaces_the_old_state_whole(tmp_path):
    make_store(tmp_path / DATA_DIR, 3)
    request_state_sync(tmp_path, 3, 40)
    make_store(new_store_path(tmp_path), 7)
    swap_in(tmp_path)
    assert store_height(tmp_path / DATA_DIR) == 7
    assert read_request(tmp_path) is None
    assert not new_store_path(tmp_path).exists() and not (state_sync_dir(tmp_path) / OLD_STORE).exists()


def test_a_crash_between_the_renames_is_finished_at_start(tmp_path):
    make_store(tmp_path / DATA_DIR, 3)
    request_state_sync(tmp_path, 3, 40)
    make_store(new_store_path(tmp_path), 7)
    (tmp_path / DATA_DIR).rename(state_sync_dir(tmp_path) / OLD_STORE)  # crash right after the first rename
    finish_swap(tmp_path)
    assert store_height(tmp_path / DATA_DIR) == 7
    assert read_request(tmp_path) is None and not (state_sync_dir(tmp_path) / OLD_STORE).exists()


def test_a_half_written_new_store_never_replaces_the_old_one(tmp_path):
    make_store(tmp_path / DATA_DIR, 3)
    request_state_sync(tmp_path, 3, 40)
    Store.open(str(new_store_path(tmp_path))).close()  # crash while the new state was being written
    finish_swap(tmp_path)
    assert store_height(tmp_path / DATA_DIR) == 3  # the old state stays; the request too (the sync runs again)
    assert needs_state_sync(tmp_path, enabled=False) == (True, 3)


def test_a_request_that_does_not_parse_counts_as_one_from_height_zero(tmp_path):
    make_store(tmp_path / DATA_DIR, 2)
    state_sync_dir(tmp_path).mkdir()
    (state_sync_dir(tmp_path) / "requested").write_text("{not json")
    assert read_request(tmp_path) == {"height": 0, "earliest": 0}
    finish_swap(tmp_path)  # the store is past height 0: the damaged request is dropped
    assert read_request(tmp_path) is None


def test_a_retained_range_shorter_than_the_snapshot_interval_is_refused(tmp_path):
    import pytest

    from node.config import ConfigError, NodeConfig, check_config
    with pytest.raises(ConfigError, match="retain_blocks"):
        check_config(NodeConfig(retain_blocks=50, snapshot_interval=100))
    check_config(NodeConfig(retain_blocks=100, snapshot_interval=100))
    check_config(NodeConfig(retain_blocks=0, snapshot_interval=100))
    check_config(NodeConfig(retain_blocks=5, snapshot_interval=0))


def test_failures_are_counted_and_a_swap_clears_them(tmp_path):
    from node.state_sync_home import failures, record_failure
    make_store(tmp_path / DATA_DIR, 2)
    state_sync_dir(tmp_path).mkdir()
    Store.open(str(new_store_path(tmp_path))).close()
    assert failures(tmp_path) == 0
    assert record_failure(tmp_path) == 1 and record_failure(tmp_path) == 2 and failures(tmp_path) == 2
    assert not new_store_path(tmp_path).exists()  # the half-written new store is dropped
    make_store(new_store_path(tmp_path), 5)
    swap_in(tmp_path)
    assert failures(tmp_path) == 0 and store_height(tmp_path / DATA_DIR) == 5


def test_a_snapshot_share_outside_1_to_100_percent_is_refused():
    import pytest

    from node.config import ConfigError, NodeConfig, check_config
    for bad in (0, -5, 101):
        with pytest.raises(ConfigError, match="snapshot_percent"):
            check_config(NodeConfig(snapshot_percent=bad))
    check_config(NodeConfig(snapshot_percent=1))
    check_config(NodeConfig(snapshot_percent=100))
