"""A crash at every byte of the signer's log and the WAL, across new heights (appended) and compactions.

Between two operations a log goes from one content to the next: by an append (a crash may leave any
prefix of it) or by a compaction (a crash leaves the old file or the new one, and maybe a ``.tmp``).
Every such crash state is reopened and checked against what had been handed out or synced before it.
"""

import pytest

from consensus_helpers import CHAIN, key, make_set, vote
from node.consensus import signer as signer_module
from node.consensus import wal as wal_module
from node.consensus.messages import Proposal, VoteType
from node.consensus.round_machine import Timeout, TimeoutKind
from node.consensus.signer import DoubleSignError, DurableSigner
from node.consensus.wal import FileWAL
from node.crypto import sha256

PV, PC = VoteType.PREVOTE, VoteType.PRECOMMIT
V, W, X = sha256(b"v"), sha256(b"w"), sha256(b"x")


def crash_states(before: bytes, after: bytes) -> list[bytes]:
    """What the file may hold after a crash on the way from ``before`` to ``after``: any prefix of an append,
    or its new length with zeros from any byte on (the length reached the disk, the data did not)."""
    if after.startswith(before):
        kept = [after[:n] for n in range(len(before), len(after) + 1)]
        zeroed = [after[:n] + bytes(len(after) - n) for n in range(len(before), len(after))]
        return kept + zeroed
    return [before, after]  # a compaction: the rename happened or not


def signer_ops() -> list[tuple]:
    """Requests over four heights, one to three rounds each: a proposal, a prevote asked twice, a precommit."""
    ops: list[tuple] = []
    t = 1_000
    for h in range(1, 5):
        for r in range(1 + h % 3):
            t += 10
            if r == 0:
                ops.append(("proposal", h, r, V, b"val%d" % h))
            ops.append(("vote", PV, h, r, V if r % 2 == 0 else None, t))
            ops.append(("vote", PV, h, r, V if r % 2 == 0 else None, t + 5))  # the same vote asked again
            ops.append(("vote", PC, h, r, W if r == 0 else None, t + 1))
    return ops


def sign(s: DurableSigner, op: tuple):
    if op[0] == "proposal":
        return s.sign_proposal(op[1], op[2], -1, op[3], op[4])
    return s.sign_vote(op[1], op[2], op[3], op[4], op[5])


def conflicting(op: tuple) -> tuple:
    if op[0] == "proposal":
        return ("proposal", op[1], op[2], X, b"other")
    return ("vote", op[1], op[2], op[3], X, op[5])


def refused(s: DurableSigner, op: tuple) -> bool:
    try:
        sign(s, op)
    except DoubleSignError:
        return True
    return False


def test_the_signer_never_signs_twice_after_a_crash_at_any_byte(tmp_path, monkeypatch):
    monkeypatch.setattr(signer_module, "COMPACT_BYTES", 700)
    path = tmp_path / "signer"
    s = DurableSigner(path, key(0), CHAIN)
    snaps = [path.read_bytes()]
    handed = []
    for op in signer_ops():
        handed.append((op, sign(s, op)))
        snaps.append(path.read_bytes())
    s.close()
    heights = [op[2] if op[0] == "vote" else op[1] for op, _ in handed]
    starts = [k for k in range(len(handed)) if k == 0 or heights[k] > heights[k - 1]]
    appended = [k for k in starts if snaps[k + 1].startswith(snaps[k])]
    assert len(appended) >= 2 and len(starts) - len(appended) >= 1, (appended, starts)  # both ways crossed
    crash = tmp_path / "crash"
    for k in range(len(handed)):
        for state in crash_states(snaps[k], snaps[k + 1]):
            crash.write_bytes(state)
            (tmp_path / "crash.tmp").write_bytes(snaps[k + 1][:20])  # a compaction's leftover, never read
            out = handed[:k + 1] if state == snaps[k + 1] else handed[:k]  # op k leaves only once durable
            s = DurableSigner(crash, key(0), CHAIN)
            if out:
                top = max(op[2] if op[0] == "vote" else op[1] for op, _ in out)
                top_round = max((op[3] if op[0] == "vote" else op[2]) for op, _ in out
                                if (op[2] if op[0] == "vote" else op[1]) == top)
                for op, message in out:
                    height = op[2] if op[0] == "vote" else op[1]
                    if height == top:  # asked again (a vote at another time): the same message
                        again = op if op[0] == "proposal" else op[:5] + (op[5] + 777,)
                        assert sign(s, again) == message, (k, len(state), op)
                    assert refused(s, conflicting(op)), (k, len(state), op)
                assert all(refused(s, ("vote", PC, h, 9, X, 1)) for h in range(1, top)), (k, len(state))
                assert all(refused(s, ("vote", PC, top, r, X, 1)) for r in range(top_round)), (k, len(state))
            s.close()


def wal_entries(height: int) -> list:
    vs, keys = make_set([1, 1, 1, 1])
    a = vs.addresses
    return [Proposal(height, 0, -1, V, b"v" * height, a[0], b"\x01" * 64),
            vote(keys, a[1], PV, height, 0, V),
            Timeout(TimeoutKind.PREVOTE, height, 0),
            vote(keys, a[2], PC, height, 1, None)]


@pytest.mark.parametrize("compact_bytes", [900, 1 << 30])
def test_the_wal_replays_its_latest_height_after_a_crash_at_any_byte(tmp_path, monkeypatch, compact_bytes):
    """The height is the last whole marker's, the entries the whole ones after it (all of that height),
    nothing synced is lost, and a lost unsynced marker leaves the height before."""
    monkeypatch.setattr(wal_module, "COMPACT_BYTES", compact_bytes)
    entries = {h: wal_entries(h) for h in range(1, 6)}
    path = tmp_path / "wal"
    wal = FileWAL(path)
    durable, synced = b"", (0, [])
    current: tuple[int, list] = (0, [])
    compacted = 0
    crash = tmp_path / "crash"
    for h in range(1, 6):
        steps = [("start", h), ("append", 0), ("append", 1), ("sync",), ("append", 2), ("append", 3)]
        steps += [("sync",)] if h % 2 else []  # an even height's tail is synced by the next height's first sync
        for step in steps:
            if step[0] == "start":
                compacting = wal._log.size >= wal_module.COMPACT_BYTES
                wal.start_height(h)
                current = (h, [])
                if compacting:
                    compacted += 1
                    durable, synced = path.read_bytes(), (h, [])
            elif step[0] == "append":
                wal.append(entries[h][step[1]])
                current = (h, current[1] + [entries[h][step[1]]])
            else:
                wal.sync()
                durable, synced = path.read_bytes(), (h, list(current[1]))
            wal._log._file.flush()  # what a crash may keep: anything written, not only what was synced
            now = path.read_bytes()
            for state in crash_states(durable, now):
                crash.write_bytes(state)
                reopened = FileWAL(crash)
                got_height, got = reopened.height, reopened.entries(reopened.height)
                reopened.close()
                assert got_height in (synced[0], current[0]), (step, len(state))
                assert got == entries.get(got_height, [])[:len(got)], (step, len(state))
                assert all(e.height == got_height for e in got), (step, len(state))
                if got_height == synced[0]:
                    assert got[:len(synced[1])] == synced[1], (step, len(state))
    wal.close()
    assert (compacted >= 1) == (compact_bytes < 1 << 20)  # the small limit is crossed, the large one never
