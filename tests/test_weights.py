"""Tests for mixtrain.weights: the single validation path of every mixture."""

import math

import pytest

from mixtrain.weights import format_weights, normalize_weights


def test_normalises_in_domain_order():
    w = normalize_weights({"b": 3, "a": 1}, ["a", "b"])
    assert list(w) == ["a", "b"] and w == pytest.approx({"a": 0.25, "b": 0.75})
    assert math.isclose(sum(w.values()), 1.0)


@pytest.mark.parametrize("weights, message", [
    ({}, "non-empty"),
    ({"a": 1, "zzz": 1}, r"unknown domain\(s\) \['zzz'\]"),
    ({"a": 1}, r"no weight for domain\(s\) \['b'\]"),
    ({"a": "x", "b": 1}, "'a' is not a number"),
    ({"a": float("inf"), "b": 1}, "'a' is inf"),
    ({"a": -0.1, "b": 1}, "'a' is negative"),
    ({"a": 0, "b": 0}, "all weights are zero"),
])
def test_bad_weights_name_the_problem(weights, message):
    with pytest.raises(ValueError, match=message):
        normalize_weights(weights, ["a", "b"])


def test_zero_weight_is_allowed_and_format_is_readable():
    w = normalize_weights({"a": 0, "b": 2}, ["a", "b"])
    assert w == {"a": 0.0, "b": 1.0}
    assert format_weights(w, 2) == "a=0.00 b=1.00"


@pytest.mark.parametrize("weights, message", [
    ({"a": "0.5", "b": 1}, r"domain 'a' is not a number: '0.5' \(str\)"),
    ({"a": True, "b": 1}, r"domain 'a' is not a number: True \(bool\)"),
    ({"a": None, "b": 1}, r"domain 'a' is not a number: None"),
    ({"a": 1, "b": 10**400}, r"domain 'b' is not a finite number"),
])
def test_strings_bools_and_huge_ints_are_refused_naming_domain_and_value(weights, message):
    with pytest.raises(ValueError, match=message):
        normalize_weights(weights, ["a", "b"])


def test_huge_finite_weights_normalise_without_overflow():
    assert normalize_weights({"a": 1e308, "b": 1e308}, ["a", "b"]) == {"a": 0.5, "b": 0.5}
    w = normalize_weights({"a": 1e308, "b": 1e-308}, ["a", "b"])
    assert w["a"] == 1.0 and 0.0 <= w["b"] < 1e-300


def test_numpy_numbers_are_numbers():
    np = pytest.importorskip("numpy")
    assert normalize_weights({"a": np.float32(1), "b": np.int64(3)}, ["a", "b"]) == {"a": 0.25, "b": 0.75}
