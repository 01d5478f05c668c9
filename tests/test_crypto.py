import random

import pytest

from genesis.build import derive_private_key
from node import crypto


def key(label: str) -> bytes:
    return derive_private_key(b"test_crypto", label)


def test_sign_verify_roundtrip_and_backends_agree_on_signature_bytes():
    rng = random.Random(1)
    for i in range(20):
        private = key(f"roundtrip-{i}")
        pub = crypto.derive_public_key(private)
        digest = rng.randbytes(32)
        sig = crypto.sign_digest(private, digest)
        assert sig == crypto.sign_digest_reference(private, digest)
        assert int.from_bytes(sig[32:], "big") <= crypto.HALF_N
        assert crypto.verify_signature(pub, digest, sig)
        assert crypto.verify_signature_reference(pub, digest, sig)


def test_high_s_is_rejected():
    private = key("high-s")
    pub = crypto.derive_public_key(private)
    digest = random.Random(2).randbytes(32)
    sig = crypto.sign_digest(private, digest)
    s = int.from_bytes(sig[32:], "big")
    high = sig[:32] + (crypto.N - s).to_bytes(32, "big")
    assert not crypto.verify_signature(pub, digest, high)
    assert not crypto.verify_signature_reference(pub, digest, high)


def test_wrong_key_or_digest_fails():
    rng = random.Random(3)
    private = key("signer")
    other = crypto.derive_public_key(key("other"))
    digest = rng.randbytes(32)
    sig = crypto.sign_digest(private, digest)
    assert not crypto.verify_signature(other, digest, sig)
    assert not crypto.verify_signature(crypto.derive_public_key(private), rng.randbytes(32), sig)


def test_address_roundtrip_and_typo_is_caught():
    pub = crypto.derive_public_key(key("address"))
    addr = crypto.address_of(pub)
    assert addr.startswith("lg1")
    assert crypto.decode_address(addr) == crypto.address_hash(pub)
    assert crypto.decode_address(addr.upper()) == crypto.address_hash(pub)
    for pos in range(3, len(addr)):
        for c in "qpzry9x8":
            if addr[pos] == c:
                continue
            typo = addr[:pos] + c + addr[pos + 1:]
            with pytest.raises(crypto.CryptoError) as info:
                crypto.decode_address(typo)
            assert info.value.code == "bad-address-checksum"
        break
    with pytest.raises(crypto.CryptoError):
        crypto.decode_address("bc1qxyz")
    with pytest.raises(crypto.CryptoError):
        crypto.decode_address(addr[:-1])


def test_private_key_range_checked():
    with pytest.raises(crypto.CryptoError):
        crypto.derive_public_key(bytes(32))
    with pytest.raises(crypto.CryptoError):
        crypto.derive_public_key(crypto.N.to_bytes(32, "big"))
