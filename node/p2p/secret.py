"""The authenticated, encrypted peer stream: a handshake, then sealed frames.

Modelled on CometBFT's SecretConnection, with the node's secp256k1 key as
its identity:

1. Each side sends ``PREAMBLE`` (magic and transport version) and a fresh
   X25519 public key.
2. Both compute the X25519 shared secret.  The transcript is
   ``sha256(TRANSCRIPT_TAG || lower key || higher key)``; HKDF-SHA256 over
   the secret, salted with the transcript, gives one ChaCha20-Poly1305 key
   per direction (the side with the lower ephemeral key sends with the first).
3. Each side sends, sealed, its 33-byte node public key, its signature of
   ``sha256(AUTH_TAG || transcript)`` and its ``Hello`` (chain, genesis hash,
   relay protocol, name).  A signature that does not verify ends the
   handshake: the peer does not hold the key it claims.  The caller then
   checks who that key is (expected id, allowed set, same chain).

A sealed frame on the wire is a 4-byte big-endian length, then the
ciphertext and its 16-byte tag; the length is authenticated as associated
data.  The nonce is a per-direction counter, so a frame replayed, dropped,
reordered or altered fails authentication and the connection is dropped.
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from node.crypto import PUBLIC_KEY_SIZE, SIGNATURE_SIZE, SigningKey, address_hash, verify_signature
from node.encoding import DecodeError, Reader, Writer
from node.stages import CLOCK

TRANSPORT_VERSION = 1
PREAMBLE = b"LGRP2P" + TRANSPORT_VERSION.to_bytes(2, "big")
"""Magic and transport version, the first bytes either side sends."""
TRANSCRIPT_TAG = b"ledger/p2p/v1/transcript"
KEYS_TAG = b"ledger/p2p/v1/keys"
AUTH_TAG = b"ledger/p2p/v1/auth"
TAG_BYTES = 16
LENGTH_BYTES = 4
MAX_AUTH_BYTES = 4096
"""Bound on the sealed authentication frame (key, signature, hello)."""
HANDSHAKE_TIMEOUT_S = 5.0


class HandshakeError(Exception):
    """The other side is not a peer this node talks to; ``reason`` is a stable code."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


class FrameError(Exception):
    """A frame that is over its limit, fails authentication, or ends early: the connection is dropped."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


def node_id_of(public_key: bytes) -> str:
    """A node's id: the hex of its key's 20-byte address hash (as ``NODEID@host:port`` names it)."""
    return address_hash(public_key).hex()


@dataclass(frozen=True)
class Hello:
    """What a node says of itself once authenticated."""

    chain_id: str
    """The chain it runs."""
    genesis_hash: bytes
    """32-byte hash of its genesis."""
    protocol: int
    """Its relay protocol version (``RELAY_PROTOCOL_VERSION``)."""
    name: str
    """Its human name (logs and status)."""

    def encode(self) -> bytes:
        return Writer().text(self.chain_id).fixed(self.genesis_hash, 32).u16(self.protocol).text(self.name).getvalue()

    @classmethod
    def read(cls, r: Reader) -> Hello:
        return cls(r.text(128), r.fixed(32), r.u16(), r.text(128))


@dataclass(frozen=True)
class PeerIdentity:
    """Who is at the other end, proven by the handshake."""

    public_key: bytes
    """Its 33-byte compressed secp256k1 node key."""
    hello: Hello
    """What it said of itself."""

    @property
    def node_id(self) -> str:
        return node_id_of(self.public_key)


class SealedStream:
    """Sealed frames over a TCP stream, one key and nonce counter per direction."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, send_key: bytes,
                 recv_key: bytes):
        self.reader = reader
        self.writer = writer
        self._send = ChaCha20Poly1305(send_key)
        self._recv = ChaCha20Poly1305(recv_key)
        self._send_counter = 0
        self._recv_counter = 0
        self.bytes_sent = 0
        self.bytes_received = 0

    def seal(self, plaintext: bytes) -> bytes:
        """The frame for ``plaintext`` (the next in this direction's order)."""
        length = (len(plaintext) + TAG_BYTES).to_bytes(LENGTH_BYTES, "big")
        nonce = bytes(4) + self._send_counter.to_bytes(8, "little")
        self._send_counter += 1
        return length + self._send.encrypt(nonce, plaintext, length)

    def write(self, plaintext: bytes) -> None:
        """Queue one sealed frame on the socket (the caller drains)."""
        CLOCK.enter("p2p")
        try:
            frame = self.seal(plaintext)
        finally:
            CLOCK.leave()
        self.bytes_sent += len(frame)
        self.writer.write(frame)

    async def read(self, limit: int) -> bytes:
        """The next frame's plaintext; ``FrameError`` when it is over ``limit`` or fails authentication."""
        try:
            header = await self.reader.readexactly(LENGTH_BYTES)
        except asyncio.IncompleteReadError:
            raise FrameError("closed", "the peer closed the connection") from None
        length = int.from_bytes(header, "big")
        if length < TAG_BYTES or length > limit + TAG_BYTES:
            raise FrameError("frame-too-large", f"a {length}-byte frame (limit {limit + TAG_BYTES})")
        try:
            ciphertext = await self.reader.readexactly(length)
        except asyncio.IncompleteReadError:
            raise FrameError("closed", "the peer closed the connection inside a frame") from None
        nonce = bytes(4) + self._recv_counter.to_bytes(8, "little")
        CLOCK.enter("p2p")
        try:
            plaintext = self._recv.decrypt(nonce, ciphertext, header)
        except InvalidTag:
            raise FrameError("bad-frame", "a frame failed authentication (altered, replayed or reordered)") from None
        finally:
            CLOCK.leave()
        self._recv_counter += 1
        self.bytes_received += LENGTH_BYTES + length
        return plaintext

    async def drain(self) -> None:
        await self.writer.drain()

    def close(self) -> None:
        self.writer.close()


def derive_keys(shared: bytes, mine: bytes, theirs: bytes) -> tuple[bytes, bytes, bytes]:
    """(send key, receive key, transcript hash) for the side whose ephemeral public key is ``mine``."""
    low, high = sorted((mine, theirs))
    transcript = hashlib.sha256(TRANSCRIPT_TAG + low + high).digest()
    okm = HKDF(algorithm=hashes.SHA256(), length=64, salt=transcript, info=KEYS_TAG).derive(shared)
    first, second = okm[:32], okm[32:]
    return (first, second, transcript) if mine == low else (second, first, transcript)


def auth_digest(transcript: bytes) -> bytes:
    """What each side signs with its node key: binds the key to this session's ephemeral keys."""
    return hashlib.sha256(AUTH_TAG + transcript).digest()


def encode_auth(key: SigningKey, transcript: bytes, hello: Hello) -> bytes:
    return Writer().fixed(key.public_key, PUBLIC_KEY_SIZE).fixed(key.sign(auth_digest(transcript)), SIGNATURE_SIZE) \
        .raw(hello.encode()).getvalue()


def decode_auth(data: bytes, transcript: bytes) -> PeerIdentity:
    """The peer's key and hello, once its signature over this session's transcript verifies."""
    try:
        r = Reader(data)
        public_key, signature = r.fixed(PUBLIC_KEY_SIZE), r.fixed(SIGNATURE_SIZE)
        hello = Hello.read(r)
        r.finish()
    except DecodeError as exc:
        raise HandshakeError("bad-handshake", f"malformed authentication: {exc}") from None
    if not verify_signature(public_key, auth_digest(transcript), signature):
        raise HandshakeError("bad-auth", "the peer's signature does not prove it holds the key it claims")
    return PeerIdentity(public_key, hello)


async def handshake(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, key: SigningKey,
                    hello: Hello, timeout_s: float = HANDSHAKE_TIMEOUT_S) -> tuple[SealedStream, PeerIdentity]:
    """Run the handshake on a fresh TCP stream; the sealed stream and who is at the other end.

    ``HandshakeError`` when the other side does not speak this transport, or
    does not prove the key it claims; nothing it sent is parsed beyond that.
    """
    try:
        async with asyncio.timeout(timeout_s):  # (not wait_for: on 3.11 it can swallow a cancellation)
            return await _handshake(reader, writer, key, hello)
    except TimeoutError:
        raise HandshakeError("handshake-timeout", f"no handshake within {timeout_s:g} s") from None
    except (asyncio.IncompleteReadError, ConnectionError) as exc:
        raise HandshakeError("bad-handshake", f"connection ended during the handshake ({type(exc).__name__})") \
            from None


async def _handshake(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, key: SigningKey,
                     hello: Hello) -> tuple[SealedStream, PeerIdentity]:
    ephemeral = X25519PrivateKey.generate()
    mine = ephemeral.public_key().public_bytes_raw()
    writer.write(PREAMBLE + mine)
    await writer.drain()
    opening = await reader.readexactly(len(PREAMBLE) + 32)
    if opening[:len(PREAMBLE)] != PREAMBLE:
        if opening[:6] == PREAMBLE[:6]:
            version = int.from_bytes(opening[6:8], "big")
            raise HandshakeError("bad-version", f"the peer speaks transport version {version}, this node "
                                                f"{TRANSPORT_VERSION}: run the same ledger-node release on every node")
        raise HandshakeError("bad-handshake", "not a ledger peer (wrong preamble)")
    theirs = opening[len(PREAMBLE):]
    if theirs == mine:
        raise HandshakeError("bad-handshake", "the peer echoed this node's own key")
    try:
        shared = ephemeral.exchange(X25519PublicKey.from_public_bytes(theirs))
    except ValueError:
        raise HandshakeError("bad-handshake", "the peer's ephemeral key is not usable") from None
    send_key, recv_key, transcript = derive_keys(shared, mine, theirs)
    stream = SealedStream(reader, writer, send_key, recv_key)
    stream.write(encode_auth(key, transcript, hello))
    await stream.drain()
    try:
        sealed = await stream.read(MAX_AUTH_BYTES)
    except FrameError as exc:
        raise HandshakeError("bad-handshake", f"authentication frame: {exc}") from None
    return stream, decode_auth(sealed, transcript)

