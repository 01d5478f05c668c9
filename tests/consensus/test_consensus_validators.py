import pytest

from consensus_helpers import key, make_set
from node.crypto import address_hash, derive_public_key
from node.types.validators import Validator, ValidatorSet, ValidatorSetError


def test_validators_are_sorted_by_address_with_thresholds():
    vs, _ = make_set([1, 1, 1, 1])
    assert list(vs.addresses) == sorted(vs.addresses)
    assert vs.total_power == 4
    assert vs.quorum_power == 3  # > 2/3 of 4
    assert vs.one_third_power == 2  # > 1/3 of 4


@pytest.mark.parametrize("total,quorum,third", [(1, 1, 1), (3, 3, 2), (6, 5, 3), (7, 5, 3), (100, 67, 34)])
def test_thresholds_are_strictly_above_two_thirds_and_one_third(total, quorum, third):
    vs = ValidatorSet([Validator("a", derive_public_key(key(0)), total)])
    assert vs.quorum_power == quorum and 3 * quorum > 2 * total and 3 * (quorum - 1) <= 2 * total
    assert vs.one_third_power == third and 3 * third > total and 3 * (third - 1) <= total


def test_lookup_by_address():
    vs, keys = make_set([5, 1, 2])
    for i, v in enumerate(vs):
        assert v.address == address_hash(v.public_key)
        assert vs.get(v.address) is v
        assert vs.index_of(v.address) == i
        assert v.address in vs
        assert vs.power_of(v.address) == v.power
    assert vs.get(b"\x00" * 20) is None
    assert vs.power_of(b"\x00" * 20) == 0
    with pytest.raises(KeyError):
        vs.index_of(b"\x00" * 20)


def test_hash_is_independent_of_input_order_and_names_but_not_of_power():
    members = [Validator(f"v{i}", derive_public_key(key(i)), i + 1) for i in range(4)]
    a = ValidatorSet(members)
    b = ValidatorSet(reversed(members))
    renamed = ValidatorSet(Validator("x" + v.name, v.public_key, v.power) for v in members)
    repowered = ValidatorSet(Validator(v.name, v.public_key, v.power + 1) for v in members)
    assert a.hash == b.hash == renamed.hash
    assert len(a.hash) == 32
    assert a.hash != repowered.hash


@pytest.mark.parametrize("members,code", [
    ([], "empty-validator-set"),
    ([Validator("a", derive_public_key(key(0)), 1), Validator("b", derive_public_key(key(0)), 2)],
     "duplicate-validator"),
])
def test_bad_sets_are_refused(members, code):
    with pytest.raises(ValidatorSetError) as exc:
        ValidatorSet(members)
    assert exc.value.code == code


@pytest.mark.parametrize("pub,power,code", [
    (b"\x02" + b"\xff" * 32, 1, "bad-validator-key"),
    (b"\x04" * 33, 1, "bad-validator-key"),
    (None, 0, "bad-validator-power"),
    (None, -3, "bad-validator-power"),
    (None, True, "bad-validator-power"),
])
def test_bad_validators_are_refused(pub, power, code):
    with pytest.raises(ValidatorSetError) as exc:
        Validator("a", pub if pub is not None else derive_public_key(key(0)), power)
    assert exc.value.code == code
