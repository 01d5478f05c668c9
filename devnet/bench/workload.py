"""The bench's transfers: slots (funded outputs), each a chain of pre-signed transfers spent one after another.

Every transfer has one input and two outputs (a payment and the change),
like a real payment.  Transfer j+1 of a slot spends the change of transfer
j and is only handed out once transfer j is seen committed, so no
transaction ever depends on an unconfirmed one, and every slot always sends
to the same node.
"""

from __future__ import annotations

import collections
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from node.types.transaction import ZERO_SIGNATURE, OutPoint, Transaction, TxInput, TxOutput, signing_digest

PAYMENT = 10_000
"""Base units each transfer pays to its recipient."""
FEE = 1_000
"""Base units each transfer leaves as fee."""

if TYPE_CHECKING:
    from devnet.bench.accounts import Signer


@dataclass(slots=True)
class TxRecord:
    """One pre-signed transfer and what became of it."""

    txid: str
    hex: str
    slot: int
    submit_t: float | None = None
    """When it was (last) sent: monotonic seconds."""
    phase: str = ""
    attempts: int = 0
    status: str = "signed"
    """signed, sent, accepted, rejected, error, committed."""
    code: str = ""
    """Rejection code (or transport error) of the last attempt."""
    commit_t: float | None = None
    height: int = 0
    commits: int = 0


@dataclass(slots=True)
class Slot:
    """A funded output and the chain of pre-signed transfers that spend it, one after the other."""

    index: int
    owner: int
    node: int
    outpoint: OutPoint
    amount: int
    queue: collections.deque = field(default_factory=collections.deque)
    busy: bool = False
    dead: bool = False


class Workload:
    """Accounts, slots and their pre-signed transfers."""

    def __init__(self, chain_id: str, signers: list[Signer], nodes: int, steady_state: bool = False):
        self.chain_id = chain_id
        self.signers = signers
        self.nodes = nodes
        self.steady_state = steady_state
        """Each transfer pays its whole amount less the fee back to its owner (one output): the UTXO set keeps its
        size, so what grows on disk is the blocks alone (``--steady-state``)."""
        self.slots: list[Slot] = []
        self.records: dict[str, TxRecord] = {}
        self.ready: list[collections.deque[int]] = [collections.deque() for _ in range(nodes)]

    def add_slot(self, owner: int, outpoint: OutPoint, amount: int) -> None:
        index = len(self.slots)
        slot = Slot(index, owner, index % self.nodes, outpoint, amount)
        self.slots.append(slot)
        self.ready[slot.node].append(index)

    def presign(self, total: int) -> int:
        """Extend the slots' chains by about ``total`` transfers in all; returns how many were signed."""
        live = [s for s in self.slots if not s.dead]
        if not live or total <= 0:
            return 0
        per_slot = math.ceil(total / len(live) * 1.25) + 1
        signed = 0
        k = len(self.signers)
        for slot in live:
            signer = self.signers[slot.owner]
            payee = self.signers[(slot.owner + 1) % k].address
            for _ in range(per_slot):
                change = slot.amount - PAYMENT - FEE
                if change <= 0:
                    break
                if self.steady_state:
                    change = slot.amount - FEE
                    outputs: tuple[TxOutput, ...] = (TxOutput(signer.address, change),)
                else:
                    outputs = (TxOutput(payee, PAYMENT), TxOutput(signer.address, change))
                unsigned = Transaction((TxInput(slot.outpoint, signer.public_key, ZERO_SIGNATURE),), outputs)
                signature = signer.sign(signing_digest(unsigned, self.chain_id))
                tx = Transaction((TxInput(slot.outpoint, signer.public_key, signature),), outputs)
                txid = tx.txid
                record = TxRecord(txid.hex(), tx.encoded.hex(), slot.index)
                self.records[record.txid] = record
                slot.queue.append(record)
                slot.outpoint = OutPoint(txid, len(outputs) - 1)
                slot.amount = change
                signed += 1
        return signed

    def take(self, node: int, count: int) -> list[TxRecord]:
        """Up to ``count`` transfers from idle slots of ``node``."""
        ready, slots = self.ready[node], self.slots
        out: list[TxRecord] = []
        while ready and len(out) < count:
            slot = slots[ready.popleft()]
            if slot.dead or slot.busy:
                continue
            if not slot.queue:
                slot.dead = True
                continue
            slot.busy = True
            out.append(slot.queue[0])
        return out

    def release(self, record: TxRecord, committed: bool) -> None:
        """The slot's current transfer committed (next one may go) or was refused for now (send it again)."""
        slot = self.slots[record.slot]
        if not slot.busy or not slot.queue or slot.queue[0] is not record:
            return
        if committed:
            slot.queue.popleft()
        slot.busy = False
        self.ready[slot.node].append(slot.index)

    def retire(self, record: TxRecord) -> None:
        """The slot's transfer was refused for good: its chain cannot go on."""
        slot = self.slots[record.slot]
        if slot.queue and slot.queue[0] is record:
            slot.dead = True
            slot.busy = False

    def idle_slots(self) -> int:
        return sum(len(q) for q in self.ready)


def slot_amount(per_slot: int) -> int:
    return (per_slot + 2) * (PAYMENT + FEE) + PAYMENT

