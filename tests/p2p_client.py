"""A test peer for a node's p2p port: the real handshake with its own key, then raw packets.

Tests use it to send what an honest node would not (malformed messages,
unknown channels, oversize frames, tampered or replayed frames) and to read
what the node sends back.  It never answers pings: keep a conversation
shorter than the node's ``p2p_idle_timeout_ms``.
"""

from __future__ import annotations

import asyncio
import time

from node.consensus.round_status import RELAY_PROTOCOL_VERSION
from node.crypto import SigningKey
from node.p2p.channels import FLAG_LAST, FRAME_LIMIT, PACKET_DATA_BYTES
from node.p2p.secret import FrameError, Hello, PeerIdentity, SealedStream, handshake


class RawPeer:
    """One connection to a node's p2p port, driven by hand."""

    def __init__(self, host: str, port: int, private_key: bytes, chain_id: str, genesis_hash: bytes,
                 name: str = "test-peer", protocol: int = RELAY_PROTOCOL_VERSION):
        self.host = host
        self.port = port
        self.key = SigningKey(private_key)
        self.hello = Hello(chain_id, genesis_hash, protocol, name)
        self.stream: SealedStream | None = None
        self.identity: PeerIdentity | None = None

    async def connect(self) -> RawPeer:
        reader, writer = await asyncio.open_connection(self.host, self.port)
        self.stream, self.identity = await handshake(reader, writer, self.key, self.hello)
        return self

    async def __aenter__(self) -> RawPeer:
        return await self.connect()

    async def __aexit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self.stream is not None:
            self.stream.close()

    def send(self, channel: int, message: bytes) -> None:
        """``message`` on ``channel``, cut into packets as the node's own sender cuts it."""
        assert self.stream is not None
        for start in range(0, max(len(message), 1), PACKET_DATA_BYTES):
            chunk = message[start:start + PACKET_DATA_BYTES]
            last = start + PACKET_DATA_BYTES >= len(message)
            self.stream.write(bytes([channel, FLAG_LAST if last else 0]) + chunk)

    def send_plaintext(self, plaintext: bytes) -> None:
        """One sealed frame with any plaintext (not necessarily a valid packet)."""
        assert self.stream is not None
        self.stream.write(plaintext)

    async def drain(self) -> None:
        assert self.stream is not None
        await self.stream.drain()

    async def receive(self, channel: int, timeout: float = 5.0, accept=lambda message: True) -> bytes:
        """The next whole message on ``channel`` that ``accept`` takes (others are skipped)."""
        assert self.stream is not None
        deadline = time.monotonic() + timeout
        partial = bytearray()
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no message on channel 0x{channel:02x} within {timeout} s")
            frame = await asyncio.wait_for(self.stream.read(FRAME_LIMIT), remaining)
            if frame[0] != channel:
                continue
            partial += frame[2:]
            if frame[1] & FLAG_LAST:
                message, partial = bytes(partial), bytearray()
                if accept(message):
                    return message

    async def closed_by_node(self, timeout: float = 5.0) -> bool:
        """True once the node closes the connection (within ``timeout``); everything before is read and dropped."""
        assert self.stream is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                await asyncio.wait_for(self.stream.read(FRAME_LIMIT), deadline - time.monotonic())
            except (FrameError, ConnectionError):
                return True
            except TimeoutError:
                return False
        return False
