"""The evidence log: equivocations this node saw, one JSON record a line in ``evidence.jsonl``.

A record is synced before it counts; a torn last line after a crash is
skipped when the log is loaded.  ``GET /v1/evidence`` serves the records.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

from node.consensus.vote_keeper import Evidence

log = logging.getLogger("ledger.node")

EVIDENCE_FILE = "evidence.jsonl"


class EvidenceLog:
    """Duplicate-vote evidence, in memory and appended to a JSONL file."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.records: list[dict] = self._load()

    def __len__(self) -> int:
        return len(self.records)

    def _load(self) -> list[dict]:
        out = []
        if self.path.exists():
            for line in self.path.read_text().splitlines():
                try:
                    out.append(json.loads(line))
                except ValueError:
                    continue  # a torn last line after a crash
        return out

    def record(self, evidence: Evidence) -> None:
        """Log two conflicting votes of one validator (synced before this returns)."""
        first, second = evidence.first, evidence.second
        record = {
            "kind": "duplicate-vote",
            "validator": first.validator.hex(),
            "height": first.height,
            "round": first.round,
            "vote_type": first.vote_type.name.lower(),
            "vote_a": {"block_hash": first.block_hash.hex() if first.block_hash else None,
                       "signature": first.signature.hex(), "encoded": first.encode().hex()},
            "vote_b": {"block_hash": second.block_hash.hex() if second.block_hash else None,
                       "signature": second.signature.hex(), "encoded": second.encode().hex()},
            "seen_at_ms": int(time.time() * 1000),
        }
        self.records.append(record)
        with open(self.path, "a") as handle:
            handle.write(json.dumps(record) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        log.warning("equivocation evidence validator=%s height=%d round=%d type=%s", record["validator"],
                    record["height"], record["round"], record["vote_type"])
