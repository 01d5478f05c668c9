"""Signed read answers: a node vouches for what it says of an address at a height, with its validator key.

A wallet that asks several nodes counts each answer with the voting power of
the validator that signed it, so a node cannot speak for another: the
attestation is a signature, by the answering node's key (a validator's is its
genesis validator key, the one it signs votes with), over

    sha256("ledger/read-attestation" || chain id || kind || height || address || sha256(body))

where ``kind`` names the read (``balance``, ``utxos``) and the body is the
canonical encoding of the answer (``balance_body``, ``utxos_body``).  The tag
keeps it from ever being a vote or a transaction signature; the chain id, an
answer of another chain; the height and address, an answer replayed for
another question.  A node whose key is not in the validator set at that
height signs too, and its word counts for no power.  Pure functions only:
the REST layer signs (``node.api.app``), the wallet verifies (``wallet.quorum``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from node.crypto import ADDRESS_SIZE, PUBLIC_KEY_SIZE, SIGNATURE_SIZE, SigningKey, sha256, verify_signature
from node.encoding import Writer
from node.errors import CodedError
from node.types.transaction import OutPoint

ATTESTATION_TAG = "ledger/read-attestation"
BALANCE = "balance"
UTXOS = "utxos"
KINDS = (BALANCE, UTXOS)
BAD_ATTESTATION = "bad-attestation"


class AttestationError(CodedError):
    """An attestation that cannot be read (``bad-attestation``)."""


@dataclass(frozen=True)
class Attestation:
    """A node's signature over one read answer."""

    validator: bytes
    """The signer's 33-byte compressed public key (a validator's key when the node is one)."""
    signature: bytes
    """64-byte r||s over ``attestation_digest``."""


def balance_body(balance: int) -> bytes:
    """The canonical bytes of a balance answer."""
    return Writer().text(BALANCE).u64(balance).getvalue()


def utxos_body(after: OutPoint | None, items: Iterable[tuple[OutPoint, int, int]], more: bool) -> bytes:
    """The canonical bytes of a page of unspent outputs: the cursor it starts after, each output (outpoint,
    amount, creation height) in order, and whether another page follows."""
    w = Writer().text(UTXOS).boolean(after is not None)
    if after is not None:
        w.fixed(after.txid, 32).u32(after.index)
    listed = list(items)
    w.u32(len(listed))
    for outpoint, amount, height in listed:
        w.fixed(outpoint.txid, 32).u32(outpoint.index).u64(amount).u64(height)
    return w.boolean(more).getvalue()


def attestation_digest(chain_id: str, kind: str, height: int, address: bytes, body: bytes) -> bytes:
    """What an attestation signs: the tag, the chain, the kind of read, the height, the address and the body's
    hash."""
    if kind not in KINDS:
        raise AttestationError(BAD_ATTESTATION, f"unknown kind of read {kind!r}")
    if len(address) != ADDRESS_SIZE:
        raise AttestationError(BAD_ATTESTATION, "an attested address is 20 bytes")
    w = Writer().text(ATTESTATION_TAG).text(chain_id).text(kind).u64(height).fixed(bytes(address), ADDRESS_SIZE)
    return sha256(w.fixed(sha256(body), 32).getvalue())


def sign_attestation(key: SigningKey, chain_id: str, kind: str, height: int, address: bytes,
                     body: bytes) -> Attestation:
    """``key``'s attestation of the answer ``body`` to a ``kind`` read of ``address`` at ``height``."""
    return Attestation(key.public_key, key.sign(attestation_digest(chain_id, kind, height, address, body)))


def verify_attestation(attestation: Attestation, chain_id: str, kind: str, height: int, address: bytes,
                       body: bytes) -> bool:
    """True when ``attestation`` is its validator's signature over exactly this answer on this chain."""
    try:
        digest = attestation_digest(chain_id, kind, height, address, body)
    except AttestationError:
        return False
    return verify_signature(attestation.validator, digest, attestation.signature)


def attestation_json(attestation: Attestation) -> dict:
    return {"validator": attestation.validator.hex(), "signature": attestation.signature.hex()}


def parse_attestation(obj: object) -> Attestation:
    """An ``attestation_json`` object back (``bad-attestation`` when it is not one)."""
    try:
        assert isinstance(obj, dict)
        validator, signature = bytes.fromhex(obj["validator"]), bytes.fromhex(obj["signature"])
    except (AssertionError, KeyError, TypeError, ValueError):
        raise AttestationError(BAD_ATTESTATION, "the answer carries no readable attestation "
                                                "{validator, signature}") from None
    if len(validator) != PUBLIC_KEY_SIZE or len(signature) != SIGNATURE_SIZE:
        raise AttestationError(BAD_ATTESTATION, f"an attestation is a {PUBLIC_KEY_SIZE}-byte key and a "
                                                f"{SIGNATURE_SIZE}-byte signature")
    return Attestation(validator, signature)
