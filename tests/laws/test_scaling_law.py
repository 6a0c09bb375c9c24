"""mixtrain/laws/scaling.py: the additive law of Shukor et al. 2025 recovers known parameters from
synthetic runs over model sizes, token budgets and mixtures, extrapolates to a larger size, and
refuses data that cannot identify it."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mixtrain.laws.scaling import ScalingLaw

DOMAINS = ["code", "prose", "web"]
# per evaluation domain: E, A, alpha, B, beta, C (per training domain), gamma (per training domain)
TRUTH = {
    "code": dict(E=0.9, A=0.6, alpha=0.35, B=0.8, beta=0.30, C=[3.0, 0.6, 1.2], gamma=[0.7, 1.0, 1.2]),
    "prose": dict(E=1.2, A=0.5, alpha=0.30, B=0.9, beta=0.25, C=[0.5, 2.5, 1.5], gamma=[1.1, 0.6, 0.9]),
    "web": dict(E=1.4, A=0.7, alpha=0.40, B=0.6, beta=0.35, C=[1.0, 1.0, 2.0], gamma=[1.0, 1.0, 0.8]),
}
N_REF, D_REF = 1e7, 1e9  # the truth's A and B are per (N / N_REF)^-alpha and (D / D_REF)^-beta


def _true_loss(n, d, h):
    out = []
    for dom in DOMAINS:
        p = TRUTH[dom]
        mix = sum(c * hj ** g for c, hj, g in zip(p["C"], h, p["gamma"]))
        out.append(p["E"] + 1.0 / mix + p["A"] * (n / N_REF) ** -p["alpha"] + p["B"] * (d / D_REF) ** -p["beta"])
    return out


def _rows(sizes, budgets, mixtures, noise=0.0, seed=0):
    rng = np.random.default_rng(seed)
    N, D, H, L = [], [], [], []
    for n in sizes:
        for d in budgets:
            for h in mixtures:
                N.append(n), D.append(d), H.append(h)
                L.append([v * float(np.exp(rng.normal(0.0, noise))) for v in _true_loss(n, d, h)])
    return N, D, H, L


MIXTURES = np.random.default_rng(1).dirichlet([1.5, 1.5, 1.5], size=9).tolist()
SIZES, BUDGETS = [3e6, 1e7, 3e7], [3e8, 1e9, 3e9, 1e10]


@pytest.fixture(scope="module")
def exact_law():
    return ScalingLaw().fit(DOMAINS, DOMAINS, *_rows(SIZES, BUDGETS, MIXTURES))


def test_recovers_known_parameters_and_extrapolates_to_a_larger_model(exact_law):
    law = exact_law
    for dom in DOMAINS:
        got, want = law.params[dom], TRUTH[dom]
        for key in ("alpha", "beta"):
            assert got[key] == pytest.approx(want[key], abs=0.01), (dom, key)
        assert got["gamma"] == pytest.approx(want["gamma"], abs=0.05), dom
        assert got["E"] == pytest.approx(want["E"], rel=0.02), dom
        # A and B are fitted per (N / n_ref), (D / d_ref): convert the truth to the law's reference
        assert got["A"] == pytest.approx(want["A"] * (law.n_ref / N_REF) ** -want["alpha"], rel=0.03), dom
        assert got["B"] == pytest.approx(want["B"] * (law.d_ref / D_REF) ** -want["beta"], rel=0.03), dom
    assert law.report["mean_mre"] < 1e-4
    # a 10x larger model than any fitted, at budgets and mixtures never seen together
    held = np.random.default_rng(7).dirichlet([1.0, 1.0, 1.0], size=5).tolist()
    N, D, H, L = _rows([3e8], [1e9, 3e10], held)
    pred = law.predict(N, D, H)
    assert np.max(np.abs(pred - np.array(L)) / np.array(L)) < 2e-3


def test_noisy_runs_still_predict_the_held_out_size_within_two_percent():
    law = ScalingLaw().fit(DOMAINS, DOMAINS, *_rows(SIZES, BUDGETS, MIXTURES, noise=0.003, seed=3))
    N, D, H, L = _rows([1e8], BUDGETS, MIXTURES)
    mre = np.mean(np.abs(law.predict(N, D, H) - np.array(L)) / np.array(L), axis=0)
    assert np.all(mre < 0.02), dict(zip(DOMAINS, mre))


def test_json_round_trip_predicts_the_same_and_a_dict_mixture_is_accepted(exact_law):
    law = exact_law
    again = ScalingLaw.from_dict(json.loads(json.dumps(law.to_dict())))
    mix = {"code": 0.2, "prose": 0.5, "web": 0.3}
    assert np.array_equal(again.predict(1e8, 1e10, mix), law.predict(1e8, 1e10, mix))
    assert law.predict(1e8, 1e10, mix).shape == (1, 3)
    with pytest.raises(ValueError, match="weights name no"):
        law.predict(1e8, 1e10, {"code": 1.0})


def test_refuses_data_that_cannot_identify_the_law():
    with pytest.raises(ValueError, match="2 distinct model sizes"):
        ScalingLaw().fit(DOMAINS, DOMAINS, *_rows(SIZES[:2], BUDGETS, MIXTURES))
    with pytest.raises(ValueError, match="distinct token budgets"):
        ScalingLaw().fit(DOMAINS, DOMAINS, *_rows(SIZES, BUDGETS[:2], MIXTURES))
    with pytest.raises(ValueError, match="5 distinct mixtures.*need >= 7"):
        ScalingLaw().fit(DOMAINS, DOMAINS, *_rows(SIZES, BUDGETS, MIXTURES[:5]))
    N, D, H, L = _rows(SIZES, BUDGETS, MIXTURES)
    L[4][1] = float("nan")
    with pytest.raises(ValueError, match="loss of 'prose' on row 4"):
        ScalingLaw().fit(DOMAINS, DOMAINS, N, D, H, L)
