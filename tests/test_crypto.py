import os

import pytest

from node import crypto


def test_sign_verify_roundtrip_and_backends_agree_on_signature_bytes():
    for _ in range(20):
        key = crypto.generate_private_key()
        pub = crypto.derive_public_key(key)
        digest = os.urandom(32)
        sig = crypto.sign_digest(key, digest)
        assert sig == crypto.sign_digest_reference(key, digest)
        assert int.from_bytes(sig[32:], "big") <= crypto.HALF_N
        assert crypto.verify_signature(pub, digest, sig)
        assert crypto.verify_signature_reference(pub, digest, sig)


def test_high_s_is_rejected():
    key = crypto.generate_private_key()
    pub = crypto.derive_public_key(key)
    digest = os.urandom(32)
    sig = crypto.sign_digest(key, digest)
    s = int.from_bytes(sig[32:], "big")
    high = sig[:32] + (crypto.N - s).to_bytes(32, "big")
    assert not crypto.verify_signature(pub, digest, high)
    assert not crypto.verify_signature_reference(pub, digest, high)


def test_wrong_key_or_digest_fails():
    key = crypto.generate_private_key()
    other = crypto.derive_public_key(crypto.generate_private_key())
    digest = os.urandom(32)
    sig = crypto.sign_digest(key, digest)
    assert not crypto.verify_signature(other, digest, sig)
    assert not crypto.verify_signature(crypto.derive_public_key(key), os.urandom(32), sig)


def test_address_roundtrip_and_typo_is_caught():
    pub = crypto.derive_public_key(crypto.generate_private_key())
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
