"""secp256k1 keys, strict low-S ECDSA signatures and checksummed addresses.

There is exactly one valid encoding of a signature (64-byte ``r || s`` with
``1 <= r < n`` and ``1 <= s <= n/2``) and of a public key (33-byte compressed
point on the curve).  ``verify_signature`` is the only verification entry
point; it uses libsecp256k1 (coincurve) when present, and its decision is
proven identical to the pure-Python ``ecdsa`` reference by a differential
test (tests/test_crypto_differential.py).
"""

from __future__ import annotations

import functools
import hashlib
import os

import ecdsa
from ecdsa.util import sigdecode_string, sigencode_strings_canonize

from node.errors import CodedError

try:  # fast backend
    from coincurve import PrivateKey as _CCPrivateKey
    from coincurve._libsecp256k1 import ffi as _ffi
    from coincurve._libsecp256k1 import lib as _lib

    _CTX = _lib.secp256k1_context_create(_lib.SECP256K1_CONTEXT_NONE)
    HAVE_FAST_BACKEND = True
except (ImportError, AttributeError):  # pragma: no cover - coincurve missing, or without the secp256k1 API we call
    HAVE_FAST_BACKEND = False

CURVE = ecdsa.SECP256k1
N: int = CURVE.order
HALF_N: int = N // 2
P: int = CURVE.curve.p()

PRIVATE_KEY_SIZE = 32
PUBLIC_KEY_SIZE = 33
SIGNATURE_SIZE = 64
DIGEST_SIZE = 32
ADDRESS_SIZE = 20
ADDRESS_HRP = "lg"


class CryptoError(CodedError, ValueError):
    """A key, address or signature that cannot be used; ``code`` is stable."""


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


# --------------------------------------------------------------------------- keys


def generate_private_key() -> bytes:
    """A uniformly random scalar in [1, n-1]."""
    while True:
        candidate = os.urandom(PRIVATE_KEY_SIZE)
        if 1 <= int.from_bytes(candidate, "big") < N:
            return candidate


def check_private_key(private_key: bytes) -> None:
    if len(private_key) != PRIVATE_KEY_SIZE or not 1 <= int.from_bytes(private_key, "big") < N:
        raise CryptoError("bad-private-key", "private key must be 32 bytes encoding a scalar in [1, n-1]")


def derive_public_key(private_key: bytes) -> bytes:
    """33-byte compressed public key of ``private_key``."""
    check_private_key(private_key)
    if HAVE_FAST_BACKEND:
        return _CCPrivateKey(private_key).public_key.format(compressed=True)
    sk = ecdsa.SigningKey.from_string(private_key, curve=CURVE)
    return sk.get_verifying_key().to_string("compressed")


def is_valid_public_key(public_key: bytes) -> bool:
    """True for a 33-byte compressed encoding of a point on secp256k1."""
    if len(public_key) != PUBLIC_KEY_SIZE or public_key[0] not in (2, 3):
        return False
    x = int.from_bytes(public_key[1:], "big")
    if x >= P:
        return False
    y2 = (pow(x, 3, P) + 7) % P
    y = pow(y2, (P + 1) // 4, P)
    return (y * y) % P == y2


# --------------------------------------------------------------------------- signatures


class SigningKey:
    """A private key parsed once, for signing many digests (a wallet, a benchmark's accounts).

    ``sign_digest`` is this with a fresh key per call; both give the same bytes.
    """

    __slots__ = ("private_key", "_fast", "_public_key")

    def __init__(self, private_key: bytes):
        check_private_key(private_key)
        self.private_key = private_key
        self._fast = _CCPrivateKey(private_key) if HAVE_FAST_BACKEND else None
        self._public_key: bytes | None = None

    @property
    def public_key(self) -> bytes:
        """33-byte compressed public key."""
        if self._public_key is None:
            self._public_key = (self._fast.public_key.format(compressed=True) if self._fast is not None
                                else derive_public_key(self.private_key))
        return self._public_key

    def sign(self, digest: bytes) -> bytes:
        """Deterministic (RFC 6979, HMAC-SHA256) low-S signature as 64-byte r||s.

        libsecp256k1 and ``ecdsa`` derive the same nonce, so both backends give
        the same bytes (tests/test_crypto.py checks it).
        """
        if len(digest) != DIGEST_SIZE:
            raise CryptoError("bad-digest", "digest must be 32 bytes")
        if self._fast is not None:
            return self._fast.sign_recoverable(digest, hasher=None)[:SIGNATURE_SIZE]
        return sign_digest_reference(self.private_key, digest)


def sign_digest(private_key: bytes, digest: bytes) -> bytes:
    """``SigningKey(private_key).sign(digest)``: a deterministic low-S signature as 64-byte r||s."""
    return SigningKey(private_key).sign(digest)


def sign_digest_reference(private_key: bytes, digest: bytes) -> bytes:
    """The pure-Python signer (``ecdsa``), kept as the reference."""
    sk = ecdsa.SigningKey.from_string(private_key, curve=CURVE, hashfunc=hashlib.sha256)
    r, s = sk.sign_digest_deterministic(digest, hashfunc=hashlib.sha256, sigencode=sigencode_strings_canonize)
    return r + s


def _as_bytes(value: bytes) -> bytes:
    """Bytes-like arguments mean the same to both backends; anything else is a TypeError in both."""
    return value if type(value) is bytes else memoryview(value).tobytes()


def _strict_scalars(signature: bytes) -> tuple[int, int] | None:
    if len(signature) != SIGNATURE_SIZE:
        return None
    r = int.from_bytes(signature[:32], "big")
    s = int.from_bytes(signature[32:], "big")
    if not (1 <= r < N and 1 <= s <= HALF_N):
        return None
    return r, s


def verify_signature_reference(public_key: bytes, digest: bytes, signature: bytes) -> bool:
    """The strict rule, decided by the pure-Python ``ecdsa`` package."""
    public_key, digest, signature = _as_bytes(public_key), _as_bytes(digest), _as_bytes(signature)
    if len(digest) != DIGEST_SIZE or _strict_scalars(signature) is None or not is_valid_public_key(public_key):
        return False
    try:
        vk = ecdsa.VerifyingKey.from_string(public_key, curve=CURVE, hashfunc=hashlib.sha256)
        return bool(vk.verify_digest(signature, digest, sigdecode=sigdecode_string, allow_truncate=False))
    except (ecdsa.BadSignatureError, ecdsa.MalformedPointError, ValueError, AssertionError):
        return False
    except TypeError:
        # ecdsa calls .x() on u1*G + u2*Q; at the point at infinity that is None % n.
        # The arguments are bytes by now, so this can only be that failed verification.
        return False


_PARSED_KEYS: dict[bytes, object] = {}
"""Public keys libsecp256k1 already parsed (a decompression each): keys sign again and again."""
_PARSED_KEYS_MAX = 16_384


def _parsed_public_key(public_key: bytes):
    """libsecp256k1's parsed form of a 33-byte key (its parser checks x < p and the curve), or None."""
    pub = _PARSED_KEYS.get(public_key)
    if pub is None:
        pub = _ffi.new("secp256k1_pubkey *")
        if not _lib.secp256k1_ec_pubkey_parse(_CTX, pub, public_key, PUBLIC_KEY_SIZE):
            return None
        if len(_PARSED_KEYS) >= _PARSED_KEYS_MAX:
            _PARSED_KEYS.clear()
        _PARSED_KEYS[public_key] = pub
    return pub


def _verify_fast(public_key: bytes, digest: bytes, signature: bytes) -> bool:
    """The strict rule, decided by libsecp256k1.

    The scalar bounds of ``_strict_scalars`` are not checked again in Python (two big-integer conversions
    per signature): the library decides exactly them.  ``secp256k1_ecdsa_signature_parse_compact`` refuses
    r or s >= n, and ``secp256k1_ecdsa_verify`` refuses r or s = 0 and s > n/2 (it accepts lower-S only);
    tests/test_crypto_differential.py checks each bound against the reference.
    """
    if type(public_key) is not bytes or type(digest) is not bytes or type(signature) is not bytes:
        public_key, digest, signature = _as_bytes(public_key), _as_bytes(digest), _as_bytes(signature)
    if len(digest) != DIGEST_SIZE or len(public_key) != PUBLIC_KEY_SIZE or len(signature) != SIGNATURE_SIZE:
        return False
    pub = _parsed_public_key(public_key)
    if pub is None:
        return False
    sig = _ffi.new("secp256k1_ecdsa_signature *")
    if not _lib.secp256k1_ecdsa_signature_parse_compact(_CTX, sig, signature):
        return False
    return bool(_lib.secp256k1_ecdsa_verify(_CTX, sig, digest, pub))


def verify_signature(public_key: bytes, digest: bytes, signature: bytes) -> bool:
    """The one verification entry point: strict low-S ECDSA over a 32-byte digest."""
    if HAVE_FAST_BACKEND:
        return _verify_fast(public_key, digest, signature)
    return verify_signature_reference(public_key, digest, signature)


# --------------------------------------------------------------------------- addresses (bech32m)

_CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_BECH32M_CONST = 0x2BC830A3


def _polymod_step_table() -> tuple[int, ...]:
    gen = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)
    table = []
    for top in range(32):
        mix = 0
        for i in range(5):
            mix ^= gen[i] if ((top >> i) & 1) else 0
        table.append(mix)
    return tuple(table)


_POLYMOD_STEP = _polymod_step_table()
"""For each value of the five bits shifted out, the generator terms they add (BIP-350's inner loop, precomputed)."""


def _polymod(values: list[int]) -> int:
    chk = 1
    step = _POLYMOD_STEP
    for v in values:
        chk = ((chk & 0x1FFFFFF) << 5) ^ v ^ step[chk >> 25]
    return chk


def _hrp_expand(hrp: str) -> list[int]:
    return [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]


def _convert_bits(data: bytes | list[int], from_bits: int, to_bits: int, pad: bool) -> list[int] | None:
    acc = bits = 0
    out: list[int] = []
    maxv = (1 << to_bits) - 1
    for value in data:
        acc = (acc << from_bits) | value
        bits += from_bits
        while bits >= to_bits:
            bits -= to_bits
            out.append((acc >> bits) & maxv)
    if pad:
        if bits:
            out.append((acc << (to_bits - bits)) & maxv)
    elif bits >= from_bits or ((acc << (to_bits - bits)) & maxv):
        return None
    return out


_HRP_EXPANDED = _hrp_expand(ADDRESS_HRP)


def address_hash(public_key: bytes) -> bytes:
    """The 20-byte account hash that outputs pay to."""
    return sha256(public_key)[:ADDRESS_SIZE]


def encode_address(account: bytes) -> str:
    if len(account) != ADDRESS_SIZE:
        raise CryptoError("bad-address", "an address hash is 20 bytes")
    data = _convert_bits(account, 8, 5, True)
    assert data is not None
    values = _hrp_expand(ADDRESS_HRP) + data
    polymod = _polymod(values + [0] * 6) ^ _BECH32M_CONST
    checksum = [(polymod >> 5 * (5 - i)) & 31 for i in range(6)]
    return ADDRESS_HRP + "1" + "".join(_CHARSET[d] for d in data + checksum)


_CHARSET_VALUE = {c: i for i, c in enumerate(_CHARSET)}


def decode_address(text: str) -> bytes:
    """Parse a human address; raises CryptoError with a reason a person can act on."""
    if not isinstance(text, str) or not text:
        raise CryptoError("bad-address", "address must be a non-empty string")
    return _decode_address(text)


@functools.lru_cache(maxsize=65_536)
def _decode_address(text: str) -> bytes:
    """``decode_address`` of a non-empty string (remembered: a genesis or a busy node parses the same ones often;
    an error is raised again each time, not remembered)."""
    if text.lower() != text and text.upper() != text:
        raise CryptoError("bad-address", "address mixes upper and lower case")
    text = text.lower()
    pos = text.rfind("1")
    if pos < 1 or text[:pos] != ADDRESS_HRP:
        raise CryptoError("bad-address", f"address must start with '{ADDRESS_HRP}1'")
    body = text[pos + 1:]
    values = [_CHARSET_VALUE.get(c, -1) for c in body]
    if -1 in values:
        raise CryptoError("bad-address", "address contains a character outside the bech32 alphabet")
    if len(values) < 7:
        raise CryptoError("bad-address", "address is too short")
    if _polymod(_HRP_EXPANDED + values) != _BECH32M_CONST:
        raise CryptoError("bad-address-checksum", "address checksum does not match: check for a typo")
    data = _convert_bits(values[:-6], 5, 8, False)
    if data is None or len(data) != ADDRESS_SIZE:
        raise CryptoError("bad-address", "address does not encode a 20-byte hash")
    return bytes(data)


def address_of(public_key: bytes) -> str:
    return encode_address(address_hash(public_key))
