"""Reconfiguration inputs: the signed records that change the validator set, ordered like transactions.

Two records go in blocks (``ReconfigInput``):

* ``Approval``: a current validator approves a ``ChangeRequest``, which it
  carries whole, so the first approval is what brings a request on chain
  and nobody outside the set can put one there;
* ``Quit``: a validator leaves, signed by its own key (no approval needed).

A ``ChangeRequest`` is either a JOIN (a new key with a power and a name,
signed by that key: proof that the joiner holds it) or a power change of a
member (power 0 removes it), which carries no signature of its own: its
authority is its approvals.  Every record names the last height at which it
may be committed (``expires``), so an old signature cannot be replayed
later; the ledger also remembers applied ones until then.

Each signature is over ``H(text("ledger/reconfig") || text(chain_id) ||
text(kind) || body)``: a record signed for one chain or one purpose is void
for any other, and cannot be confused with a transaction or a vote.  A
record's id is the hash of its unsigned body.  The rules that apply them
are ``node.ledger.reconfig_rules``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from node.crypto import PUBLIC_KEY_SIZE, SIGNATURE_SIZE, SigningKey, address_hash, sha256, verify_signature
from node.encoding import DecodeError, Reader, Writer
from node.types.hashes import HASH_SIZE

RECONFIG_DOMAIN = "ledger/reconfig"
JOIN = 1
"""``ChangeRequest.kind``: a new validator (signed by its own key)."""
POWER = 2
"""``ChangeRequest.kind``: a member's new power; 0 removes it."""
REQUEST_KINDS = {JOIN: "join", POWER: "power"}
APPROVAL_TAG = 0x41
QUIT_TAG = 0x51
REQUEST_TAG = 0x52
"""A change request on its own: relayed between nodes and submitted over REST so validators can find and
approve it; it never goes in a block by itself (an approval carries it)."""
MAX_NAME_BYTES = 64
MAX_INPUT_BYTES = 512
"""Largest encoded reconfiguration input (an approval of a join with the longest name is ~260 bytes)."""
NO_SIGNATURE = bytes(SIGNATURE_SIZE)


def _digest(chain_id: str, kind: str, body: bytes) -> bytes:
    return sha256(Writer().text(RECONFIG_DOMAIN).text(chain_id).text(kind).raw(body).getvalue())


@dataclass(frozen=True)
class ChangeRequest:
    """A change of the validator set that takes effect once more than 2/3 of the power approved it."""

    kind: int
    """``JOIN`` or ``POWER``."""
    public_key: bytes
    """33-byte key of the validator concerned: the joiner, or the member whose power changes."""
    power: int
    """u64: the power it will have (at least 1 for a join; 0 removes a member)."""
    name: str
    """Display name of a joiner (at most 64 UTF-8 bytes); empty for a power change."""
    expires: int
    """u64: last height at which it may be approved; it is forgotten after."""
    signature: bytes = NO_SIGNATURE
    """A join's 64-byte signature by ``public_key`` (proof of possession); zeros for a power change."""

    @cached_property
    def unsigned_bytes(self) -> bytes:
        return (Writer().u8(self.kind).fixed(self.public_key, PUBLIC_KEY_SIZE).u64(self.power).text(self.name)
                .u64(self.expires).getvalue())

    @cached_property
    def id(self) -> bytes:
        """32-byte id: the hash of everything but the signature."""
        return sha256(self.unsigned_bytes)

    @property
    def address(self) -> bytes:
        return address_hash(self.public_key)

    @property
    def kind_name(self) -> str:
        return REQUEST_KINDS.get(self.kind, f"kind-{self.kind}")

    def signing_digest(self, chain_id: str) -> bytes:
        return _digest(chain_id, "join", self.unsigned_bytes)

    def has_valid_signature(self, chain_id: str) -> bool:
        """A join is signed by its own key; a power change carries no signature (zeros)."""
        if self.kind == POWER:
            return self.signature == NO_SIGNATURE
        return verify_signature(self.public_key, self.signing_digest(chain_id), self.signature)

    def write(self, w: Writer) -> Writer:
        return w.raw(self.unsigned_bytes).fixed(self.signature, SIGNATURE_SIZE)

    @cached_property
    def encoded(self) -> bytes:
        """The request alone, tagged (``REQUEST_TAG``), as it travels before its first approval."""
        return self.write(Writer().u8(REQUEST_TAG)).getvalue()

    @classmethod
    def read(cls, r: Reader) -> ChangeRequest:
        kind = r.u8()
        if kind not in REQUEST_KINDS:
            raise DecodeError(f"unknown change request kind {kind}")
        return cls(kind, r.fixed(PUBLIC_KEY_SIZE), r.u64(), r.text(MAX_NAME_BYTES), r.u64(), r.fixed(SIGNATURE_SIZE))


@dataclass(frozen=True)
class Approval:
    """A validator's signed approval of a change request, which it carries whole."""

    request: ChangeRequest
    """What is approved."""
    approver: bytes
    """33-byte key of the approving validator."""
    signature: bytes
    """64 bytes by ``approver`` over the approval digest of ``request.id``."""

    @staticmethod
    def signing_digest(chain_id: str, request_id: bytes) -> bytes:
        return _digest(chain_id, "approve", request_id)

    def has_valid_signature(self, chain_id: str) -> bool:
        return verify_signature(self.approver, self.signing_digest(chain_id, self.request.id), self.signature)

    @property
    def approver_address(self) -> bytes:
        return address_hash(self.approver)

    @cached_property
    def id(self) -> bytes:
        """One approval per approver and request."""
        return sha256(b"approval" + self.request.id + self.approver)

    @cached_property
    def encoded(self) -> bytes:
        w = Writer().u8(APPROVAL_TAG)
        self.request.write(w)
        return w.fixed(self.approver, PUBLIC_KEY_SIZE).fixed(self.signature, SIGNATURE_SIZE).getvalue()


@dataclass(frozen=True)
class Quit:
    """A validator leaves the set, signed by its own key, for one membership of that key."""

    public_key: bytes
    """33-byte key of the leaving validator."""
    expires: int
    """u64: last height at which it may be committed."""
    signature: bytes
    """64 bytes by ``public_key``."""
    since: int = 1
    """u64: the height the membership it ends began at (1 for genesis members; ``GET /v1/validators`` shows it), so
    a quit signed before the key left and joined again cannot end the new membership."""

    @cached_property
    def unsigned_bytes(self) -> bytes:
        return Writer().fixed(self.public_key, PUBLIC_KEY_SIZE).u64(self.since).u64(self.expires).getvalue()

    @cached_property
    def id(self) -> bytes:
        return sha256(b"quit" + self.unsigned_bytes)

    @property
    def address(self) -> bytes:
        return address_hash(self.public_key)

    def signing_digest(self, chain_id: str) -> bytes:
        return _digest(chain_id, "quit", self.unsigned_bytes)

    def has_valid_signature(self, chain_id: str) -> bool:
        return verify_signature(self.public_key, self.signing_digest(chain_id), self.signature)

    @cached_property
    def encoded(self) -> bytes:
        return Writer().u8(QUIT_TAG).raw(self.unsigned_bytes).fixed(self.signature, SIGNATURE_SIZE).getvalue()


ReconfigInput = Approval | Quit
"""What a block carries besides transactions."""


def read_input(r: Reader) -> ReconfigInput:
    tag = r.u8()
    if tag == APPROVAL_TAG:
        return Approval(ChangeRequest.read(r), r.fixed(PUBLIC_KEY_SIZE), r.fixed(SIGNATURE_SIZE))
    if tag == QUIT_TAG:
        key, since, expires = r.fixed(PUBLIC_KEY_SIZE), r.u64(), r.u64()
        return Quit(key, expires, r.fixed(SIGNATURE_SIZE), since)
    raise DecodeError(f"unknown reconfiguration input tag {tag:#x}")


def decode_input(data: bytes) -> ReconfigInput:
    if len(data) > MAX_INPUT_BYTES:
        raise DecodeError(f"a reconfiguration input is at most {MAX_INPUT_BYTES} bytes, got {len(data)}")
    r = Reader(data)
    item = read_input(r)
    r.finish()
    return item


PoolItem = ChangeRequest | Approval | Quit
"""What a node accepts over REST and relays: a request to be approved, or a block input."""


def decode_pool_item(data: bytes) -> PoolItem:
    """A change request, approval or quit (``decode_input`` accepts only the last two, what blocks carry)."""
    if len(data) > MAX_INPUT_BYTES:
        raise DecodeError(f"a reconfiguration input is at most {MAX_INPUT_BYTES} bytes, got {len(data)}")
    if data[:1] == bytes([REQUEST_TAG]):
        r = Reader(data)
        r.u8()
        request = ChangeRequest.read(r)
        r.finish()
        return request
    return decode_input(data)


def encode_input(item: ReconfigInput) -> bytes:
    return item.encoded


def input_kind(item: PoolItem) -> str:
    """``request``, ``approve`` or ``quit``: how logs and REST name an input."""
    if isinstance(item, ChangeRequest):
        return "request"
    return "approve" if isinstance(item, Approval) else "quit"


def inputs_hash(items: tuple[ReconfigInput, ...] | list[ReconfigInput] | tuple[()]) -> bytes:
    """What a header's ``inputs_hash`` names: the hash of the count and every input's bytes, in block order."""
    w = Writer().text("ledger/inputs").u32(len(items))
    for item in items:
        w.var_bytes(item.encoded)
    return sha256(w.getvalue())


EMPTY_INPUTS_HASH = inputs_hash(())
"""The ``inputs_hash`` of a block without reconfiguration inputs."""


# ---------------------------------------------------------------------------- signing (operators, tests)


def sign_join(chain_id: str, private_key: bytes, power: int, name: str, expires: int) -> ChangeRequest:
    """A JOIN request for the key ``private_key``, signed by it."""
    key = SigningKey(private_key)
    unsigned = ChangeRequest(JOIN, key.public_key, power, name, expires)
    return ChangeRequest(JOIN, key.public_key, power, name, expires, key.sign(unsigned.signing_digest(chain_id)))


def power_request(public_key: bytes, power: int, expires: int) -> ChangeRequest:
    """A request to set a member's power (0 removes it); it needs no signature of its own."""
    return ChangeRequest(POWER, public_key, power, "", expires)


def sign_approval(chain_id: str, private_key: bytes, request: ChangeRequest) -> Approval:
    key = SigningKey(private_key)
    return Approval(request, key.public_key, key.sign(Approval.signing_digest(chain_id, request.id)))


def sign_quit(chain_id: str, private_key: bytes, expires: int, since: int = 1) -> Quit:
    """A quit of ``private_key``'s membership that began at height ``since`` (1: a genesis member)."""
    key = SigningKey(private_key)
    unsigned = Quit(key.public_key, expires, NO_SIGNATURE, since)
    return Quit(key.public_key, expires, key.sign(unsigned.signing_digest(chain_id)), since)


__all__ = [
    "APPROVAL_TAG", "Approval", "ChangeRequest", "EMPTY_INPUTS_HASH", "HASH_SIZE", "JOIN", "MAX_INPUT_BYTES",
    "POWER", "PoolItem", "QUIT_TAG", "Quit", "REQUEST_TAG", "ReconfigInput", "decode_input", "decode_pool_item",
    "encode_input", "input_kind", "inputs_hash", "power_request", "read_input", "sign_approval", "sign_join",
    "sign_quit",
]
