"""Where state sync meets the node's home: when it runs, and how the state it writes replaces the old one.

State sync runs before the node starts, in two cases:

- the store holds no state yet (a home made with ``init --state-sync``, or a
  first state sync a crash cut short);
- a running node found that every peer ahead has pruned the next height
  (``node.sync``), so no block can bring it up to date.  It records a request
  (``statesync/requested``) and restarts (``ledger-node start`` executes
  itself again, keeping its process id); at start the request is carried
  out.

The new state is written beside the old one, in ``statesync/store``, and
swapped in only once whole: ``data`` -> ``statesync/old``,
``statesync/store`` -> ``data``, the request removed, the old state deleted.
A crash leaves the old state (the transfer resumes with the chunks it kept)
or the new one, never a half one: a swap a crash cut short is finished at the
next start (``finish_swap``).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from node.config import DATA_DIR
from node.ledger.store import Store

STATE_SYNC_DIR = "statesync"
"""Everything of a state sync under the home: chunks, the new store, the request, the blocks collected."""
REQUEST_FILE = "requested"
"""A running node's request for state sync (JSON: the height it was at and the peers' earliest height)."""
FAILURES_FILE = "failures"
"""How many state syncs in a row failed for a node that has a state (it waits longer before the next)."""
NEW_STORE = "store"
OLD_STORE = "old"
CHUNKS_DIR = "chunks"
BLOCKS_DIR = "blocks"
"""Blocks collected from the peers while the snapshot was fetched; the node applies them first."""


def state_sync_dir(home: Path) -> Path:
    return Path(home) / STATE_SYNC_DIR


def request_state_sync(home: Path, height: int, earliest: int) -> None:
    """Record, durably, that this node (at ``height``) needs a snapshot: the peers serve blocks from ``earliest``."""
    folder = state_sync_dir(home)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / REQUEST_FILE
    tmp = path.with_name(REQUEST_FILE + ".tmp")
    with open(tmp, "w") as out:
        json.dump({"height": height, "earliest": earliest}, out)
        out.flush()
        os.fsync(out.fileno())
    tmp.replace(path)
    _sync_dir(folder)


def read_request(home: Path) -> dict | None:
    """The pending request, or None (a request that does not parse counts as one from height 0)."""
    path = state_sync_dir(home) / REQUEST_FILE
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (ValueError, OSError):
        return {"height": 0, "earliest": 0}
    return data if isinstance(data, dict) and isinstance(data.get("height"), int) else {"height": 0, "earliest": 0}


def clear_request(home: Path) -> None:
    (state_sync_dir(home) / REQUEST_FILE).unlink(missing_ok=True)


def record_failure(home: Path) -> int:
    """One more failed state sync in a row (the new store, if any, is dropped): the count so far."""
    shutil.rmtree(new_store_path(home), ignore_errors=True)
    count = failures(home) + 1
    folder = state_sync_dir(home)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / FAILURES_FILE).write_text(str(count))
    return count


def failures(home: Path) -> int:
    """State syncs in a row that failed (0 after one that succeeded)."""
    try:
        return max(0, int((state_sync_dir(home) / FAILURES_FILE).read_text().strip() or 0))
    except (OSError, ValueError):
        return 0


def store_height(path: Path) -> int | None:
    """The committed height of the store at ``path``, or None when it holds no state (or does not exist)."""
    if not path.exists():
        return None
    with Store.open(str(path)) as store:
        return store.height if store.initialized else None


def new_store_path(home: Path) -> Path:
    return state_sync_dir(home) / NEW_STORE


def swap_in(home: Path) -> None:
    """Make the whole new state in ``statesync/store`` the node's (the old one, if any, is deleted after)."""
    home = Path(home)
    data, new, old = home / DATA_DIR, new_store_path(home), state_sync_dir(home) / OLD_STORE
    shutil.rmtree(old, ignore_errors=True)
    if data.exists():
        data.rename(old)
    new.rename(data)
    _sync_dir(home)
    clear_request(home)
    (state_sync_dir(home) / FAILURES_FILE).unlink(missing_ok=True)
    shutil.rmtree(old, ignore_errors=True)
    shutil.rmtree(state_sync_dir(home) / CHUNKS_DIR, ignore_errors=True)


def finish_swap(home: Path) -> None:
    """Finish a swap a crash cut short, and forget a request the node has since gone past."""
    home = Path(home)
    data, new, old = home / DATA_DIR, new_store_path(home), state_sync_dir(home) / OLD_STORE
    if not data.exists() and store_height(new) is not None:
        swap_in(home)
    shutil.rmtree(old, ignore_errors=True)
    request = read_request(home)
    if request is not None:
        height = store_height(data)
        if height is not None and height > request["height"]:  # the new state is in; the request is done
            clear_request(home)


def needs_state_sync(home: Path, enabled: bool) -> tuple[bool, int]:
    """(whether state sync must run before the node starts, the height of the state the node has: 0 for none).
    ``enabled``: the config's ``state_sync``, which lets an empty store be filled from a snapshot."""
    height = store_height(Path(home) / DATA_DIR)
    if height is None:
        return enabled, 0
    return read_request(home) is not None, height


def _sync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
