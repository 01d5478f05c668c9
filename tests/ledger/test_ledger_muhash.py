"""MuHash3072: order independence, add/remove inverse, combine, serialization, and the pure-int reference."""

from __future__ import annotations

import hashlib
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from node.ledger import muhash as M
from node.ledger.muhash import EMPTY_STATE, MODULUS, MuHash

elements = st.lists(st.binary(min_size=0, max_size=80), max_size=12)


def of(items) -> MuHash:
    h = MuHash()
    for item in items:
        h.add(item)
    return h


def reference_digest(added, removed=()) -> bytes:
    """MuHash with plain Python integers, written from the definition."""
    def number(e):
        v = int.from_bytes(hashlib.shake_256(e).digest(384), "little") % MODULUS
        return v or 1
    num = den = 1
    for e in added:
        num = num * number(e) % MODULUS
    for e in removed:
        den = den * number(e) % MODULUS
    return hashlib.sha256((num * pow(den, -1, MODULUS) % MODULUS).to_bytes(384, "little")).digest()


def test_modulus_is_core_prime():
    assert MODULUS == 2**3072 - 1103717 and MODULUS.bit_length() == 3072


@settings(max_examples=50, deadline=None)
@given(elements, st.randoms(use_true_random=False))
def test_order_does_not_matter(items, rnd):
    shuffled = list(items)
    rnd.shuffle(shuffled)
    assert of(items).digest() == of(shuffled).digest() == reference_digest(items)


@settings(max_examples=50, deadline=None)
@given(elements, elements)
def test_remove_is_the_inverse_of_add(base, extra):
    h = of(base)
    before = h.digest()
    for e in extra:
        h.add(e)
    for e in reversed(extra):
        h.remove(e)
    assert h.digest() == before
    # Removing first, adding later (the order inside a block) ends at the same place.
    g = of(base)
    for e in extra:
        g.remove(e)
    for e in extra:
        g.add(e)
    assert g.digest() == before == reference_digest(base)


@settings(max_examples=50, deadline=None)
@given(elements, elements)
def test_combine_is_multiset_union_and_serialization_round_trips(a, b):
    h = of(a)
    h.combine(of(b))
    assert h.digest() == of(a + b).digest()
    g = of(a)
    for e in b:
        g.remove(e)
    restored = MuHash.deserialize(g.serialize())
    assert restored == g and restored.digest() == g.digest() == reference_digest(a, b)


def test_multiset_not_set_and_empty_state():
    assert of([b"x"]).digest() != of([b"x", b"x"]).digest()
    assert MuHash().serialize() == EMPTY_STATE and len(EMPTY_STATE) == 768
    assert MuHash().digest() == hashlib.sha256((1).to_bytes(384, "little")).digest()


def test_deserialize_rejects_bad_states():
    for bad in (b"", EMPTY_STATE[:-1], bytes(768), b"\xff" * 768):
        try:
            MuHash.deserialize(bad)
        except ValueError:
            continue
        raise AssertionError("accepted a bad state")


def test_gmpy2_backend_is_in_use():
    assert M.HAVE_GMPY2


def test_many_random_elements_match_reference():
    rng = random.Random(7)
    items = [rng.randbytes(64) for _ in range(200)]
    removed = items[:50]
    h = of(items)
    h.remove_many(removed)
    assert h.digest() == of(items[50:]).digest() == reference_digest(items, removed)
