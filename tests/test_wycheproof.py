"""All three Wycheproof secp256k1/SHA-256 files against both verifiers.

Each case becomes our strict form (33-byte compressed key, 32-byte digest,
64-byte r || s); both backends must agree on it, and the verdict must be
Wycheproof's, with one documented difference: the ledger rejects high-S
signatures, which the plain ECDSA files call valid.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path

import pytest
from ecdsa.util import sigencode_der

from genesis.build import derive_private_key
from node import crypto

VECTORS = Path(__file__).resolve().parents[1].parent / "shared" / "vectors"
FILES = {
    # file name: (signature form, does Wycheproof itself require low S, least number of cases)
    "wycheproof_ecdsa_secp256k1_sha256_p1363_test.json": ("p1363", False, 250),
    "wycheproof_ecdsa_secp256k1_sha256_test.json": ("der", False, 470),
    "wycheproof_ecdsa_secp256k1_sha256_bitcoin_test.json": ("der", True, 460),
}

pytestmark = [
    pytest.mark.skipif(
        not VECTORS.is_dir(),
        reason=f"Wycheproof vectors not found at {VECTORS} (CI keeps them beside the repo in ../shared/vectors)",
    ),
    pytest.mark.skipif(not crypto.HAVE_FAST_BACKEND, reason="coincurve (the fast backend) is not installed"),
]


# --------------------------------------------------------------------------- conversions


def parse_der_integer(data: bytes, pos: int) -> tuple[int, int] | None:
    """A strict DER INTEGER at ``pos``: (value, next position), or None."""
    if pos + 2 > len(data) or data[pos] != 0x02:
        return None
    length = data[pos + 1]
    if length == 0 or length > 33 or pos + 2 + length > len(data):
        return None  # short-form length only: a value below 2^256 never needs more
    body = data[pos + 2 : pos + 2 + length]
    if body[0] & 0x80:
        return None  # negative
    if length > 1 and body[0] == 0 and not body[1] & 0x80:
        return None  # non-minimal leading zero
    return int.from_bytes(body, "big"), pos + 2 + length


def parse_der_signature(der: bytes) -> tuple[int, int] | None:
    """(r, s) from a strict DER SEQUENCE of two INTEGERs with nothing after it, or None."""
    if len(der) < 2 or der[0] != 0x30 or der[1] >= 0x80 or der[1] != len(der) - 2:
        return None
    first = parse_der_integer(der, 2)
    if first is None:
        return None
    r, pos = first
    second = parse_der_integer(der, pos)
    if second is None:
        return None
    s, pos = second
    if pos != len(der) or r >= 1 << 256 or s >= 1 << 256:
        return None
    return r, s


def compress_public_key(uncompressed_hex: str) -> bytes:
    """Our 33-byte form of a Wycheproof key, after checking it is a point on the curve."""
    raw = bytes.fromhex(uncompressed_hex)
    assert len(raw) == 65 and raw[0] == 4
    x, y = int.from_bytes(raw[1:33], "big"), int.from_bytes(raw[33:], "big")
    assert x < crypto.P and y < crypto.P and (y * y - x**3 - 7) % crypto.P == 0, "not on secp256k1"
    key = bytes([2 | (y & 1)]) + raw[1:33]
    assert crypto.is_valid_public_key(key)
    return key


def test_strict_der_parser():
    key = derive_private_key(b"test_wycheproof", "der")
    for i in range(50):
        digest = hashlib.sha256(bytes([i])).digest()
        sig = crypto.sign_digest(key, digest)
        r, s = int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big")
        assert parse_der_signature(sigencode_der(r, s, crypto.N)) == (r, s)
    good = sigencode_der(1, 0x80, crypto.N)  # 30 07 02 01 01 02 02 00 80
    assert parse_der_signature(good) == (1, 0x80)
    for bad in (
        good + b"\x00",  # trailing byte
        good[:-1],  # truncated
        b"\x31" + good[1:],  # not a SEQUENCE
        bytes.fromhex("30080202000102020080"),  # r with a needless leading zero
        bytes.fromhex("300702018102020080"),  # negative r
        bytes.fromhex("3006020101020180"),  # negative s
        bytes.fromhex("30810702010102020080"),  # long-form length
        bytes.fromhex("3005020002020080"[:-2]),  # empty integer
        bytes.fromhex("3007030101020200 80".replace(" ", "")),  # wrong integer tag
        b"",
    ):
        assert parse_der_signature(bad) is None, bad.hex()


# --------------------------------------------------------------------------- the vectors


def check_file(name: str) -> Counter:
    form, wycheproof_low_s, least = FILES[name]
    path = VECTORS / name
    assert path.is_file(), f"missing {path}"
    document = json.loads(path.read_text())
    counts: Counter = Counter()
    for group in document["testGroups"]:
        public_key = compress_public_key(group["publicKey"]["uncompressed"])
        assert group["sha"] == "SHA-256"
        for case in group["tests"]:
            counts["cases"] += 1
            counts[case["result"]] += 1
            where = f"{name} tcId {case['tcId']} ({case['comment']})"
            digest = hashlib.sha256(bytes.fromhex(case["msg"])).digest()
            raw = bytes.fromhex(case["sig"])
            if form == "der":
                scalars = parse_der_signature(raw)
                if scalars is None:
                    assert case["result"] == "invalid", f"{where}: strict DER refused a {case['result']} signature"
                    counts["refused by strict DER"] += 1
                    continue
                signature = scalars[0].to_bytes(32, "big") + scalars[1].to_bytes(32, "big")
            else:
                signature = raw  # wrong lengths go to the verifiers as they are
            fast = crypto._verify_fast(public_key, digest, signature)
            reference = crypto.verify_signature_reference(public_key, digest, signature)
            assert fast == reference, f"{where}: fast={fast} reference={reference}"
            assert crypto.verify_signature(public_key, digest, signature) == fast
            counts["verified"] += 1
            high_s = len(signature) == 64 and int.from_bytes(signature[32:], "big") > crypto.HALF_N
            if case["result"] == "valid":
                if high_s:
                    assert not wycheproof_low_s, f"{where}: Wycheproof's own low-S file calls a high-S signature valid"
                    assert not fast, f"{where}: a high-S signature must be rejected"
                    counts["valid but high-S, rejected"] += 1
                else:
                    assert fast, f"{where}: a valid low-S signature was rejected"
                    counts["valid, accepted"] += 1
            elif case["result"] == "invalid":
                assert not fast, f"{where}: an invalid signature was accepted"
                counts["invalid, rejected"] += 1
            else:
                assert case["result"] == "acceptable", where
                counts[f"acceptable, {'accepted' if fast else 'rejected'}"] += 1
    assert counts["cases"] == document["numberOfTests"], "every case in the file was looked at"
    assert counts["cases"] >= least
    return counts


@pytest.mark.parametrize("name", sorted(FILES))
def test_wycheproof_file(name):
    counts = check_file(name)
    print(f"\n{name}: {dict(sorted(counts.items()))}")
    assert counts["verified"] >= 200, "the verifiers must actually have been run"
    assert counts["valid, accepted"] >= 90
    assert counts["invalid, rejected"] >= 60
    if name.endswith("p1363_test.json") or name.endswith("sha256_test.json"):
        assert counts["valid but high-S, rejected"] >= 20, "the low-S difference must have been exercised"
