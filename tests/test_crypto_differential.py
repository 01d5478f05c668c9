"""The fast verifier (libsecp256k1 via coincurve) and the reference (pure-Python
``ecdsa``) make the same decision on every input.

Consensus depends on it: if one node ran the fast path and another the
reference, a single signature they judged differently would split the chain.
Each check below goes through ``decide``, which asserts that both backends
(and the public entry point) agree before the test looks at the answer.
"""

from __future__ import annotations

import random

import ecdsa
import pytest
from ecdsa.ellipticcurve import PointJacobi
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from node import crypto

pytestmark = pytest.mark.skipif(
    not crypto.HAVE_FAST_BACKEND, reason="coincurve (the fast backend) is not installed: there is nothing to compare"
)

N = crypto.N
P = crypto.P
HALF_N = crypto.HALF_N
G = crypto.CURVE.generator
TWO_256 = 1 << 256


def decide(public_key, digest, signature) -> bool:
    """Both backends' verdict, after asserting that they are the same."""
    fast = crypto._verify_fast(public_key, digest, signature)
    reference = crypto.verify_signature_reference(public_key, digest, signature)
    assert isinstance(fast, bool) and isinstance(reference, bool)
    assert fast == reference, (
        f"backends disagree: fast={fast} reference={reference} "
        f"pub={bytes(public_key).hex()} digest={bytes(digest).hex()} sig={bytes(signature).hex()}"
    )
    assert crypto.verify_signature(public_key, digest, signature) == fast
    return fast


def b32(value: int) -> bytes:
    return value.to_bytes(32, "big")


def sig_of(r: int, s: int) -> bytes:
    return b32(r) + b32(s)


def compress(x: int, y: int) -> bytes:
    return bytes([2 | (y & 1)]) + b32(x)


def uncompressed(public_key: bytes) -> bytes:
    point = ecdsa.VerifyingKey.from_string(public_key, curve=crypto.CURVE).pubkey.point
    return b"\x04" + b32(point.x()) + b32(point.y())


def valid_triple(rng: random.Random) -> tuple[bytes, bytes, bytes, bytes]:
    """(private key, public key, digest, signature) with a correct low-S signature."""
    key = b32(rng.randrange(1, N))
    digest = rng.randbytes(32)
    return key, crypto.derive_public_key(key), digest, crypto.sign_digest(key, digest)


def scalars(signature: bytes) -> tuple[int, int]:
    return int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")


# --------------------------------------------------------------------------- random valid and garbage


def test_random_valid_signatures_are_accepted_and_their_twins_rejected():
    rng = random.Random(1)
    for _ in range(150):
        key, pub, digest, sig = valid_triple(rng)
        r, s = scalars(sig)
        assert 1 <= s <= HALF_N
        assert decide(pub, digest, sig)
        assert not decide(pub, digest, sig_of(r, N - s)), "high-S twin must be rejected"
        assert not decide(pub, digest, sig_of(s, r))
        assert not decide(crypto.derive_public_key(b32(rng.randrange(1, N))), digest, sig)
        assert not decide(pub, rng.randbytes(32), sig)


def test_random_garbage_is_rejected_by_both():
    rng = random.Random(2)
    lengths = (0, 1, 31, 32, 33, 34, 63, 64, 65, 72)
    for _ in range(3000):
        pub = rng.randbytes(rng.choice((33, 33, 33) + lengths))
        if rng.random() < 0.5 and len(pub) == 33:
            pub = bytes([rng.choice((2, 3))]) + pub[1:]
        digest = rng.randbytes(rng.choice((32, 32, 32) + lengths))
        sig = rng.randbytes(rng.choice((64, 64, 64) + lengths))
        assert not decide(pub, digest, sig)


# --------------------------------------------------------------------------- adversarial matrix


def adversarial_public_keys(pub: bytes) -> list[bytes]:
    x = pub[1:]
    not_on_curve = next(b32(v) for v in range(1, 100) if not crypto.is_valid_public_key(b"\x02" + b32(v)))
    keys = [
        pub,
        bytes([pub[0] ^ 1]) + x,  # the negated point
        crypto.derive_public_key(b32(1)),  # G
        crypto.derive_public_key(b32(N - 1)),  # -G
        b"\x02" + b32(0),  # x = 0 is not on secp256k1
        b"\x02" + not_on_curve,
        b"\x02" + b32(P),  # x = p
        b"\x03" + b32(P + 1),
        b"\x02" + b32(TWO_256 - 1),  # x >= p
        b"\x02" + b32(P - 1),
        bytes(33),
        b"\xff" * 33,
        x,  # 32 bytes
        pub + b"\x00",  # 34 bytes
        uncompressed(pub),  # 65 bytes, a valid point in a form we do not take
        b"\x06" + uncompressed(pub)[1:],  # hybrid forms
        b"\x07" + uncompressed(pub)[1:],
        b"",
    ]
    keys += [bytes([prefix]) + x for prefix in (0x00, 0x01, 0x04, 0x05, 0xFF)]
    return keys


def adversarial_digests(digest: bytes) -> list[bytes]:
    return [
        digest,
        bytes(32),
        b"\xff" * 32,
        b32(1),
        b32(N - 1),
        b32(N),
        b32(N + 1),
        digest[:31],
        digest + b"\x00",
        b"",
    ]


def adversarial_r(r: int) -> list[int]:
    return [r, 0, 1, HALF_N, HALF_N + 1, N - 1, N, N + 1, P - 1, P, TWO_256 - 1, (r + N) % TWO_256]


def adversarial_s(s: int) -> list[int]:
    return [s, N - s, 0, 1, HALF_N, HALF_N + 1, N - 1, N, N + 1, TWO_256 - 1]


def test_adversarial_matrix_of_keys_digests_and_scalars():
    rng = random.Random(3)
    _, pub, digest, sig = valid_triple(rng)
    r, s = scalars(sig)
    signatures = [sig_of(rr, ss) for rr in adversarial_r(r) for ss in adversarial_s(s)]
    signatures += [sig[:63], sig + b"\x00", sig[:32], b"", bytes(64), b"\xff" * 64, sig * 2, b"\x30" + sig]
    accepted = checked = 0
    for pub_candidate in adversarial_public_keys(pub):
        for digest_candidate in adversarial_digests(digest):
            for sig_candidate in signatures:
                accepted += decide(pub_candidate, digest_candidate, sig_candidate)
                checked += 1
    assert checked > 20_000
    assert accepted == 1, "only the original triple is valid in this matrix"


def test_scalar_bounds_are_exactly_the_strict_rule():
    """r and s just inside and just outside the bounds, on otherwise valid inputs."""
    key = b32(0xC0FFEE)
    pub = crypto.derive_public_key(key)
    for r, s in ((0, 1), (N, 1), (1, 0), (1, HALF_N + 1), (1, N), (N - 1, N - 1)):
        assert not decide(pub, bytes(32), sig_of(r, s))
    # Valid signatures whose s sits exactly on n/2 cannot be produced on demand, but a
    # valid (r, s) can be re-targeted: verification of (r, s) on digest e under Q is
    # unchanged by scaling, so solve for the digest that makes (r, HALF_N) valid under pub.
    d = 0xC0FFEE
    for k in (2, 3, 0xDEADBEEF):
        r = (G * k).x() % N
        for s in (1, HALF_N):
            e = (s * k - r * d) % N  # s = (e + r d) / k
            assert decide(pub, b32(e), sig_of(r, s))
            if s == HALF_N:
                assert not decide(pub, b32(e), sig_of(r, HALF_N + 1))
            # s and s + n are the same scalar: a backend that reduced s mod n would take this one
            if s + N < TWO_256:  # s = 1 (s + n must fit the 32 bytes)
                assert not decide(pub, b32(e), sig_of(r, s + N))


def test_digests_equal_mod_n_are_equivalent():
    """A 32-byte digest >= n is reduced mod n by both backends, and by both signers."""
    for key_int in (1, 2, N - 1, 0x1234567):
        key = b32(key_int)
        pub = crypto.derive_public_key(key)
        for small in (0, 1, 7, TWO_256 - N - 1):
            low, high = b32(small), b32(small + N)
            sig = crypto.sign_digest(key, high)
            assert sig == crypto.sign_digest_reference(key, high)
            assert sig == crypto.sign_digest(key, low)
            assert decide(pub, high, sig)
            assert decide(pub, low, sig)


def test_point_at_infinity_in_verification_is_rejected():
    """u1*G + u2*Q = O when e = -r*d (mod n); the reference once crashed on it."""
    d = 5
    pub = crypto.derive_public_key(b32(d))
    for r in (1, 12345, N - 1):
        e = (-r * d) % N
        for s in (1, 2, HALF_N):
            assert not decide(pub, b32(e), sig_of(r, s))


def test_signature_whose_nonce_point_has_x_above_n():
    """r = x(R) - n when n <= x(R) < p: libsecp256k1 takes a separate branch for it.

    No private key is needed: pick R, u1, u2, then Q = (R - u1*G) / u2, s = r/u2, e = u1*s.
    """
    curve = crypto.CURVE.curve
    rng = random.Random(4)
    found = 0
    x = N + 1  # r = x - n must be at least 1
    while found < 3:
        y2 = (pow(x, 3, P) + 7) % P
        y = pow(y2, (P + 1) // 4, P)
        if y * y % P == y2:
            R = PointJacobi(curve, x, y, 1, N)
            r = x - N
            u1, u2 = rng.randrange(1, N), rng.randrange(1, N)
            Q = (R + G * (N - u1)) * pow(u2, -1, N)
            s = r * pow(u2, -1, N) % N
            e = u1 * s % N
            if s > HALF_N:  # (r, n-s) verifies under the same Q: R becomes -R, same x
                s = N - s
            pub = compress(Q.x(), Q.y())
            assert decide(pub, b32(e), sig_of(r, s))
            assert not decide(pub, b32(e), sig_of(x, s)), "the unreduced x is >= n, out of range"
            assert not decide(pub, b32(e), sig_of(r, N - s))
            found += 1
        x += 1


def test_bytes_like_arguments_agree_and_other_types_raise_in_both():
    rng = random.Random(5)
    _, pub, digest, sig = valid_triple(rng)
    for convert in (bytearray, memoryview):
        assert decide(convert(pub), convert(digest), convert(sig))
        assert not decide(convert(pub), convert(digest), convert(sig[:32] + bytes(32)))
    for bad in ("ab" * 16, 5, None, [1] * 33):
        for verify in (crypto._verify_fast, crypto.verify_signature_reference):
            for args in ((bad, digest, sig), (pub, bad, sig), (pub, digest, bad)):
                with pytest.raises(TypeError):
                    verify(*args)


# --------------------------------------------------------------------------- key parsing


def decompress(public_key: bytes) -> PointJacobi:
    x = int.from_bytes(public_key[1:], "big")
    y = pow((pow(x, 3, P) + 7) % P, (P + 1) // 4, P)
    if y & 1 != public_key[0] & 1:
        y = P - y
    return PointJacobi(crypto.CURVE.curve, x, y, 1, N)


def forge_valid_signature(public_key: bytes, rng: random.Random) -> tuple[bytes, bytes]:
    """(digest, signature) valid under any point, without its private key.

    Pick u1, u2; R = u1*G + u2*Q, r = x(R) mod n, s = r/u2, e = u1*s: then
    verification computes exactly R again.
    """
    Q = decompress(public_key)
    while True:
        u1, u2 = rng.randrange(1, N), rng.randrange(1, N)
        R = G * u1 + Q * u2
        if R == ecdsa.ellipticcurve.INFINITY or R.x() % N == 0:
            continue
        r = R.x() % N
        s = r * pow(u2, -1, N) % N
        e = u1 * s % N
        return b32(e), sig_of(r, min(s, N - s))


def fast_key_parses(public_key: bytes) -> bool:
    pub = crypto._ffi.new("secp256k1_pubkey *")
    return bool(crypto._lib.secp256k1_ec_pubkey_parse(crypto._CTX, pub, public_key, len(public_key)))


def check_key(public_key: bytes, rng: random.Random) -> bool:
    """Whether the key is usable; asserts both backends think so and a signature under it verifies."""
    valid = crypto.is_valid_public_key(public_key)
    if len(public_key) == 33:
        assert fast_key_parses(public_key) == valid, public_key.hex()
    if valid:
        digest, sig = forge_valid_signature(public_key, rng)
        assert decide(public_key, digest, sig)
    return valid


def test_key_validity_is_the_same_in_both_backends():
    """A signature is only as valid as its key: a key one backend accepts and the other
    refuses would show up only with a correct signature under it, so make one."""
    rng = random.Random(7)
    _, pub, _, _ = valid_triple(rng)
    valid = sum(check_key(k, rng) for k in adversarial_public_keys(pub))
    for x in list(range(0, 64)) + list(range(P - 64, P + 64)) + [rng.randrange(P) for _ in range(200)]:
        for prefix in (2, 3):
            valid += check_key(bytes([prefix]) + b32(x), rng)
    assert valid > 200


# --------------------------------------------------------------------------- exhaustive bit flips


def flip(data: bytes, bit: int) -> bytes:
    out = bytearray(data)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


def test_every_single_bit_flip_of_valid_triples_is_rejected_by_both():
    rng = random.Random(6)
    checked = 0
    for _ in range(2):
        _, pub, digest, sig = valid_triple(rng)
        for bit in range(33 * 8):
            assert not decide(flip(pub, bit), digest, sig)
        for bit in range(32 * 8):
            assert not decide(pub, flip(digest, bit), sig)
        for bit in range(64 * 8):
            assert not decide(pub, digest, flip(sig, bit))
        checked += (33 + 32 + 64) * 8
    assert checked == 2 * 1032


# --------------------------------------------------------------------------- hypothesis


def _structured_key() -> st.SearchStrategy[bytes]:
    interesting_x = st.one_of(
        st.integers(0, 1000), st.integers(P - 1000, TWO_256 - 1), st.integers(0, TWO_256 - 1)
    )
    return st.builds(lambda prefix, x: bytes([prefix]) + b32(x), st.sampled_from((0, 2, 3, 4, 5)), interesting_x)


def _structured_signature() -> st.SearchStrategy[bytes]:
    edge = st.sampled_from((0, 1, HALF_N - 1, HALF_N, HALF_N + 1, N - 1, N, N + 1, P, TWO_256 - 1))
    scalar = st.one_of(edge, st.integers(0, TWO_256 - 1), st.integers(1, HALF_N))
    return st.builds(sig_of, scalar, scalar)


public_keys = st.one_of(st.binary(min_size=33, max_size=33), st.binary(max_size=70), _structured_key())
digests = st.one_of(st.binary(min_size=32, max_size=32), st.binary(max_size=40))
signatures = st.one_of(st.binary(min_size=64, max_size=64), st.binary(max_size=80), _structured_signature())

_settings = settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_settings
@given(public_keys, digests, signatures)
def test_hypothesis_arbitrary_bytes_agree(pub, digest, sig):
    decide(pub, digest, sig)


@_settings
@given(st.one_of(_structured_key(), st.binary(min_size=33, max_size=33)), st.randoms(use_true_random=False))
def test_hypothesis_keys_parse_alike_and_verify_a_signature(public_key, rng):
    check_key(public_key, rng)


@_settings
@given(
    key=st.integers(1, N - 1),
    digest=st.binary(min_size=32, max_size=32),
    flips=st.lists(st.tuples(st.sampled_from(("pub", "digest", "sig")), st.integers(0, 511)), max_size=4),
    twin=st.booleans(),
)
def test_hypothesis_mutated_valid_triples_agree(key, digest, flips, twin):
    pub = crypto.derive_public_key(b32(key))
    sig = crypto.sign_digest(b32(key), digest)
    parts = {"pub": pub, "digest": digest, "sig": sig}
    for part, bit in flips:
        parts[part] = flip(parts[part], bit % (len(parts[part]) * 8))
    if twin:
        r, s = scalars(parts["sig"])
        parts["sig"] = sig_of(r, (N - s) % TWO_256)
    verdict = decide(parts["pub"], parts["digest"], parts["sig"])
    unchanged = parts == {"pub": pub, "digest": digest, "sig": sig}
    assert verdict == unchanged
