"""ADO, ODM and online_bimix against their papers' algorithms (docs/online.md): synthetic
bandits in which one domain's loss falls fastest or stays highest, one update recomputed by
hand from the paper's formulas, the earlier defaults as named options, and online_bimix's rule
of more observations than parameters. Pure unit tests: `update()` driven like train/mixing_controller.py.
"""

from __future__ import annotations

import json
import math

import pytest
from online_helpers import DOMAINS, _ctx, _drive, _history

from mixtrain.mixing.ado import ADO, fit_power_law
from mixtrain.mixing.base import MixHistory
from mixtrain.mixing.odm import ODM


# ---------------------------------------------------------------------------- ADO


def test_power_law_fit_recovers_parameters():
    import numpy as np

    n = np.geomspace(1e3, 1e7, 30)
    fit = fit_power_law(n, 2.0 + 30.0 * n ** -0.3)
    assert fit["alpha"] == pytest.approx(0.3, abs=1e-3) and fit["eps"] == pytest.approx(2.0, rel=1e-3)
    flat = fit_power_law(n, np.full(30, 3.0))
    assert flat["alpha"] * flat["beta"] * 1e7 ** -flat["alpha"] < 1e-3  # a flat curve has no speed


def _falling(d, n, step):  # a: stopped improving; b: its loss falls fastest; c: in between
    return {"a": 3.0, "b": 1.0 + 50.0 * n ** -0.4, "c": 2.0 + 5.0 * n ** -0.2}[d]


def test_ado_fastest_falling_domain_gains_weight():
    """The synthetic bandit of the paper's argument: the domain whose loss still falls fastest
    (largest -dL/dn) gains weight, the flat one loses it (down to the floor's neighbourhood)."""
    ado = ADO(refit_every_n_steps=10, fit_every_n_steps=10, prior="uniform", ignore_initial_steps=0)
    init = ado.initial_weights(_ctx())
    proposals, final, _ = _drive(ado, init, _falling, refits=30)
    assert proposals[:4] == [None] * 4  # fewer than min_points = 5 points per domain: keep the prior
    assert ado.last_fit_report["phase"] == "fit"
    assert final["b"] > max(final["a"], final["c"]) and final["b"] > init["b"]
    assert final["a"] < init["a"] and final["a"] < final["c"]
    assert min(final.values()) >= ado.floor - 1e-12
    b_share = [p["b"] for p in proposals if p is not None]
    assert b_share[-1] > b_share[0]  # the running mean keeps moving towards the fast domain


def test_ado_update_is_the_papers_policy():
    """One update recomputed by hand from the state before it: credit = EMA of the policy,
    rho ∝ prior * credit^s * max(alpha, 0.05) (L(n) - eps) / n, clipped at the floor, pi =
    gamma2 rho + (1 - gamma2) running mean of rho. A different formula anywhere fails this."""
    ado = ADO(refit_every_n_steps=10, fit_every_n_steps=30, ignore_initial_steps=0)
    init = ado.initial_weights(_ctx())  # natural prior 1/6, 2/6, 3/6
    _, w, carry = _drive(ado, init, _falling, refits=8)
    before = json.loads(json.dumps(ado.state_dict()))
    records, tokens, step = carry
    tokens = {d: tokens[d] + int(10_000 * w[d]) for d in w}
    h = _history(step + 10, w, tokens, {d: _falling(d, tokens[d], step) for d in w}, records)
    out = ado.update(h)
    assert ado.last_fit_report["refitted"] is False  # the law was fitted at step 60; next fit due at 90
    assert ado.state_dict()["fits"] == before["fits"]
    g1 = 1 - 0.9 ** 10
    credit = {d: (1 - g1) * before["credit"][d] + g1 * before["policy"][d] for d in w}
    fits, prior = before["fits"], before["prior_weights"]
    speed = {d: max(fits[d]["alpha"], 0.05) * fits[d]["beta"] * tokens[d] ** -fits[d]["alpha"] / tokens[d] for d in w}
    raw = {d: prior[d] * credit[d] ** 0.5 * speed[d] for d in w}
    rho = {d: max(raw[d] / sum(raw.values()), 0.01) for d in w}
    rho = {d: v / sum(rho.values()) for d, v in rho.items()}
    pi = {d: 0.1 * rho[d] + 0.9 * before["mean_rho"][d] for d in w}
    assert out == pytest.approx({d: v / sum(pi.values()) for d, v in pi.items()}, rel=1e-9)
    keep = (step + 1) / (step + 11)
    assert ado.state_dict()["mean_rho"] == pytest.approx({d: keep * before["mean_rho"][d] + (1 - keep) * rho[d]
                                                          for d in w}, rel=1e-9)


def test_ado_refits_its_laws_every_fit_every_n_steps_only():
    ado = ADO(refit_every_n_steps=10, fit_every_n_steps=30, prior="uniform", ignore_initial_steps=0)
    _drive(ado, ado.initial_weights(_ctx()), _falling, refits=12)
    assert ado.state_dict()["fit_step"] == 110  # first fit at 50 (5 points), then 80, 110
    ado = ADO(refit_every_n_steps=10, prior="uniform", ignore_initial_steps=40)
    proposals, _, _ = _drive(ado, ado.initial_weights(_ctx()), _falling, refits=9)
    assert proposals[:8] == [None] * 8 and proposals[8] is not None  # points only after step 40: 5 at step 90


def test_ado_smoothing_recovers_the_law_from_noisy_losses():
    """ADO fits Savitzky-Golay-smoothed losses: on noisy per-interval losses the smoothed series is
    closer to the true curve than the raw one."""
    import numpy as np

    from mixtrain.mixing.ado import smooth_losses

    rng = np.random.default_rng(0)
    n = np.linspace(1e4, 1e6, 200)
    true = 2.0 + 30.0 * n ** -0.3
    noisy = true * np.exp(rng.normal(0.0, 0.02, n.size))
    smoothed = smooth_losses(noisy, 21)
    assert np.abs(smoothed - true).mean() < 0.5 * np.abs(noisy - true).mean()
    assert smooth_losses(noisy[:3], 21) is not None and np.array_equal(smooth_losses(noisy[:3], 21), noisy[:3])


def test_ado_old_behaviour_is_a_named_option():
    """speed=log credit=realised loss_smoothing_steps=0 fit_every_n_steps=1: the earlier module."""
    old = ADO(refit_every_n_steps=10, prior="uniform", speed="log", credit="realised", loss_smoothing_steps=0,
              fit_every_n_steps=1, ignore_initial_steps=0, min_points=3)
    new = ADO(refit_every_n_steps=10, prior="uniform", ignore_initial_steps=0, min_points=3)
    a, _, _ = _drive(old, old.initial_weights(_ctx()), _falling, refits=10)
    b, _, _ = _drive(new, new.initial_weights(_ctx()), _falling, refits=10)
    assert a[2] is not None and a[-1] != b[-1]
    with pytest.raises(ValueError, match="mixing.credit"):
        ADO(credit="tokens")
    with pytest.raises(ValueError, match="min_points"):
        ADO(min_points=2)


def test_ado_prior_is_natural_mixture():
    w = ADO().initial_weights(_ctx((1000, 1000, 2000)))
    assert w == pytest.approx({"a": 0.25, "b": 0.25, "c": 0.5})
    w = ADO(prior="temperature", prior_temperature=2.0).initial_weights(_ctx((1000, 1000, 4000)))
    assert w == pytest.approx({"a": 0.25, "b": 0.25, "c": 0.5})


# ---------------------------------------------------------------------------- ODM


def test_odm_domain_with_higher_loss_gains_weight():
    odm = ODM(refit_every_n_steps=10, warmup_steps=0)
    init = odm.initial_weights(_ctx())
    assert init == pytest.approx({d: 1 / 3 for d in DOMAINS})
    proposals, final, _ = _drive(odm, init, lambda d, n, s: {"a": 6.0, "b": 3.0, "c": 3.0}[d], refits=30)
    shares = [p["a"] for p in proposals]
    assert shares[0] > 1 / 3 and shares[-1] > shares[5] > shares[0]  # EXP3: the reward accumulates
    assert all(p["a"] > p["b"] for p in proposals)
    assert final["b"] == pytest.approx(final["c"]) and final["a"] > final["b"]
    eps = odm.last_fit_report["eps"]
    assert eps == pytest.approx(min(1 / 3, math.sqrt(math.log(3) / (3 * 300))))
    assert min(final.values()) >= eps - 1e-12  # EXP3 keeps eps_t on every arm


def test_odm_every_step_concentrates_on_the_highest_loss_not_back_to_uniform():
    """A bandit with fixed losses, updated every step as ODM: the cumulative importance-weighted
    reward makes the high-loss domain's share keep growing. The old moving-average reward
    (reward=ema) stays bounded while eps_t decays, so its policy ends near uniform."""
    loss = lambda d, n, s: {"a": 4.0, "b": 3.0, "c": 3.0}[d]  # noqa: E731
    shares = {}
    for reward in ("cumulative", "ema"):
        odm = ODM(warmup_steps=50, reward=reward)
        assert odm.refit_every_n_steps == 1
        proposals, _, _ = _drive(odm, odm.initial_weights(_ctx()), loss, refits=2000, every=1)
        assert proposals[:50] == [None] * 50  # uniform warm-up, no bandit update
        shares[reward] = [p["a"] for p in proposals[50:]]
    cum, ema = shares["cumulative"], shares["ema"]
    assert cum[-1] > cum[500] > cum[50] > 1 / 3 and cum[-1] > 0.6
    assert ema[-1] < max(ema) and abs(ema[-1] - 1 / 3) < 0.02  # bounded R, decaying eps_t: ~uniform


def test_odm_reward_is_importance_weighted_by_the_policy():
    """Reward of a step = scale * share * loss / pi: a domain drawn less than its policy says (or not
    at all) is not penalised in expectation; with equal losses and multinomially drawn batches the
    policy stays near uniform."""
    import numpy as np

    odm = ODM(warmup_steps=0)
    odm.load_state_dict({"rewards": {"a": 1.0, "b": 1.0, "c": 1.0}, "policy": None})
    h = MixHistory(step=20, max_steps=100, weights={"a": 0.5, "b": 0.5, "c": 0.0},
                   tokens_seen={d: 100 for d in DOMAINS},
                   train_loss={"a": 3.0, "b": 2.0, "c": math.nan}, records=[{"step": 18}],
                   scheduled_weights={"a": 0.25, "b": 0.5, "c": 0.25})
    odm.update(h)
    r = odm.state_dict()["rewards"]
    assert r == pytest.approx({"a": 1 + 2 * 0.1 * 0.5 * 3.0 / 0.25, "b": 1 + 2 * 0.1 * 0.5 * 2.0 / 0.5, "c": 1.0})
    rng, odm = np.random.default_rng(0), ODM(warmup_steps=0)
    weights, records, tokens = odm.initial_weights(_ctx()), [], {d: 0 for d in DOMAINS}
    for step in range(1, 1501):
        counts = rng.multinomial(16, [weights[d] for d in DOMAINS])
        share = {d: c / 16 for d, c in zip(DOMAINS, counts)}
        tokens = {d: tokens[d] + int(c) for d, c in zip(DOMAINS, counts)}
        h = MixHistory(step=step, max_steps=None, weights=share, tokens_seen=dict(tokens),
                       train_loss={d: 3.0 if share[d] > 0 else math.nan for d in DOMAINS},
                       records=records[-1:], scheduled_weights=dict(weights))
        weights = odm.update(h) or weights
        records.append({"step": step})
    assert max(abs(w - 1 / 3) for w in weights.values()) < 0.08


def test_odm_refit_interval_does_not_change_the_bandit():
    """The bandit updated every step and proposing every 10 steps equals one refitted every 10
    steps: a refit adds its k steps' reward (warm-up steps excluded) and uses eps_{t-1} of the
    step before. (Shares equal the policy here, so every step's reward estimate is the loss.)"""
    loss = lambda d, n, s: {"a": 4.0, "b": 3.0, "c": 2.5}[d]  # noqa: E731
    every_step = ODM(warmup_steps=20, propose_every_n_steps=10)
    a, _, _ = _drive(every_step, every_step.initial_weights(_ctx()), loss, refits=200, every=1)
    every_ten = ODM(warmup_steps=20, refit_every_n_steps=10)
    b, _, _ = _drive(every_ten, every_ten.initial_weights(_ctx()), loss, refits=20, every=10)
    # proposals: at the first update (step 21), then at every multiple of 10
    assert [i + 1 for i, p in enumerate(a) if p is not None] == [21, *range(30, 201, 10)]
    assert len(b[2:]) == 18
    for got, want in zip(b[2:], [a[step - 1] for step in range(30, 201, 10)]):
        assert got == pytest.approx(want, rel=1e-12)
    assert every_step.state_dict()["rewards"] == pytest.approx(every_ten.state_dict()["rewards"], rel=1e-12)


def test_odm_warmup_keeps_uniform_and_unsampled_domain_gets_no_reward():
    odm = ODM(warmup_steps=25, refit_every_n_steps=10)
    init = odm.initial_weights(_ctx())
    proposals, _, _ = _drive(odm, init, lambda d, n, s: math.nan if d == "c" else 4.0, refits=4)
    assert proposals[:2] == [None, None] and proposals[2] is not None
    assert odm.state_dict()["rewards"]["c"] == 0.0
    assert proposals[-1]["a"] == pytest.approx(proposals[-1]["b"]) and proposals[-1]["a"] > proposals[-1]["c"]
    with pytest.raises(ValueError, match="mixing.reward "):
        ODM(reward="sum")


# ---------------------------------------------------------------------------- online_bimix


BIMIX_ALPHA = {"a": 0.6, "b": 0.05, "c": 0.05}


def _feed_bimix_losses(strategy, rng, concentration, *, max_steps, refits=8):
    """Refit `strategy` every 10 steps on losses drawn from a BiMix law (alpha = BIMIX_ALPHA),
    each interval read with Dirichlet(concentration) shares; returns (tokens seen, last proposal)."""
    tokens = {d: 0.0 for d in BIMIX_ALPHA}
    records, proposal = [], None
    for i in range(1, refits + 1):
        for d, w in zip(BIMIX_ALPHA, rng.dirichlet(concentration)):
            tokens[d] += 1000 * w
        total = sum(tokens.values())
        step = 10 * i
        loss = {d: (tokens[d] / total) ** -a * (3.0 * step ** -0.4 + 1.5) for d, a in BIMIX_ALPHA.items()}
        history = MixHistory(step=step, max_steps=max_steps, weights={d: 1 / 3 for d in BIMIX_ALPHA},
                             tokens_seen=dict(tokens), train_loss=loss, val_loss=loss, records=list(records))
        proposal = strategy.update(history)
        records.append({"step": step, "tokens_seen": dict(tokens), "train_loss": loss, "val_loss": loss})
    return tokens, proposal


def test_online_bimix_fit_favours_the_domain_whose_loss_depends_on_its_share():
    """Losses generated by a BiMix law: `a` gains a lot from its own share (alpha 0.6), `b` and
    `c` barely (alpha 0.05); once fitted, the optimum gives `a` the largest weight."""
    import numpy as np

    from mixtrain.mixing.online_bimix import OnlineBiMix

    strategy = OnlineBiMix(refit_every_n_steps=10, prior="uniform", min_weight=0.0)
    strategy.compute(_ctx())
    _, proposal = _feed_bimix_losses(strategy, np.random.default_rng(0), [4.0, 4.0, 4.0], max_steps=1000)
    assert strategy.last_fit_report["phase"] == "fit"
    assert proposal["a"] > max(proposal["b"], proposal["c"]), proposal


def test_online_bimix_does_not_fit_before_it_has_more_records_than_parameters():
    """BiMix has 4 parameters per domain: 4 observations would be interpolated exactly, so the
    first fit is at the 5th; asking for fewer is a configuration error."""
    import numpy as np

    from mixtrain.mixing.online_bimix import OnlineBiMix, law_params_per_domain

    assert law_params_per_domain("bimix", DOMAINS) == 4
    strategy = OnlineBiMix(refit_every_n_steps=10, prior="uniform", min_weight=0.0)
    strategy.compute(_ctx())
    phases = []
    for refits in range(1, 7):
        _feed_bimix_losses(strategy, np.random.default_rng(0), [4.0, 4.0, 4.0], max_steps=1000, refits=refits)
        phases.append(strategy.last_fit_report["phase"])
    assert phases == ["explore"] * 4 + ["fit"] * 2
    assert OnlineBiMix(min_records=6).compute(_ctx()) is not None
    with pytest.raises(ValueError, match="min_records=4: law 'bimix' has 4 parameters per domain"):
        OnlineBiMix(min_records=4).compute(_ctx())


def test_remaining_budget_weights_reach_the_target_cumulatively():
    from mixtrain.mixing.online_bimix import remaining_budget_weights

    # a biased first half (a: 80%), then as many tokens again: the rest must favour b to end at 50/50
    w = remaining_budget_weights({"a": 0.5, "b": 0.5}, {"a": 800, "b": 200}, 1000)
    assert w == pytest.approx({"a": 0.2, "b": 0.8})
    assert (800 + 1000 * w["a"]) / 2000 == pytest.approx(0.5)
    # unreachable: a is already over 50% of the final total; the closest is to read none of it
    w = remaining_budget_weights({"a": 0.5, "b": 0.5}, {"a": 1800, "b": 200}, 1000)
    assert w == pytest.approx({"a": 0.0, "b": 1.0})
    # three domains, one clipped: the projection keeps the others' relative correction
    w = remaining_budget_weights({"a": 0.2, "b": 0.3, "c": 0.5}, {"a": 600, "b": 300, "c": 100}, 1000)
    assert w["a"] == 0.0 and w["c"] > w["b"] > 0 and sum(w.values()) == pytest.approx(1.0)
    assert remaining_budget_weights({"a": 0.3, "b": 0.7}, {"a": 5, "b": 5}, 0) == pytest.approx({"a": 0.3, "b": 0.7})


def test_online_bimix_compensates_a_biased_first_half():
    """Halfway through a 160-step run whose first half read `a` at ~15%, the proposal for the rest
    gives `a` more than the law's optimum r*, so that the cumulative share at the end is r*."""
    import numpy as np

    from mixtrain.mixing.online_bimix import OnlineBiMix

    strategy = OnlineBiMix(refit_every_n_steps=10, prior="uniform", min_weight=0.0)
    strategy.compute(_ctx())
    # biased against a
    tokens, proposal = _feed_bimix_losses(strategy, np.random.default_rng(1), [3.0, 8.0, 8.0], max_steps=160)
    report = strategy.last_fit_report
    assert report["phase"] == "fit" and report["remaining_tokens"] == pytest.approx(sum(tokens.values()), rel=1e-6)
    optimum, seen = report["optimum"], sum(tokens.values())
    assert tokens["a"] / seen < optimum["a"] - 0.05  # the first half really is behind the optimum
    assert proposal["a"] > optimum["a"] + 0.05
    final = {d: (tokens[d] + proposal[d] * seen) / (2 * seen) for d in BIMIX_ALPHA}  # remaining = seen tokens
    assert final == pytest.approx(optimum, abs=1e-4)
