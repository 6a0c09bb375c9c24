"""mixtrain.report: Holm–Bonferroni over the paired comparisons, and the scale in the header."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mixtrain.report import aggregate_table, load_runs, runs_table, write_report
from mixtrain.report.scale import model_parameters
from mixtrain.report.stats import comparisons, holm, paired_t_pvalue, survivors
from report.test_report import _table_rows, write_run


def test_holm_step_down_known_decisions():
    # sorted: .005 (x4 = .02 reject), .01 (x3 = .03 reject), .03 (x2 = .06 stop), .04 (x1 = .04, but the
    # step-down stopped: adjusted max(.06, .04) = .06, not rejected; a non-monotone version would reject it)
    out = holm([0.01, 0.04, 0.03, 0.005])
    assert [p for p, _ in out] == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert [r for _, r in out] == [True, False, False, True]
    # None is untestable: not counted in m, never rejected; adjusted p is capped at 1
    out = holm([0.02, None, 0.6])
    assert out[1] == (None, False) and out[0] == (pytest.approx(0.04), True) and out[2][0] == pytest.approx(0.6)
    assert holm([0.5, 0.9, 0.7]) == [(1.0, False)] * 3  # 3 x .5 and 2 x .7 cap at 1; .9 inherits the running max
    assert holm([0.02, 0.03], alpha=0.01) == [(pytest.approx(0.04), False), (pytest.approx(0.04), False)]
    with pytest.raises(ValueError, match="p-value #1 = 1.5"):
        holm([0.1, 1.5])
    with pytest.raises(ValueError, match="alpha"):
        holm([0.1], alpha=0)


def test_paired_t_pvalue_matches_the_t_statistic():
    from scipy.stats import t

    d = np.array([-0.03, -0.01, -0.025, -0.02, 0.004])
    stat = d.mean() / (d.std(ddof=1) / math.sqrt(len(d)))
    assert paired_t_pvalue(d) == pytest.approx(2 * t.sf(abs(stat), len(d) - 1))
    assert paired_t_pvalue([0.1]) is None and paired_t_pvalue([0.2, 0.2, 0.2]) is None


def test_report_holm_table_from_runs(tmp_path):
    """4 seeds: `good` beats both baselines on every seed by a wide margin; `noise` differs from uniform
    by seed-level jitter of both signs. Holm runs over all 8 comparisons (2 strategies x 2 baselines x
    2 scores); good's wins on the mean val loss survive, noise's do not."""
    rate = {"uniform": 0.30, "natural": 0.29, "good": 0.40, "noise": 0.30}
    jitter = {"uniform": [0, 2, 1, 3], "natural": [1, 0, 2, 1], "good": [2, 1, 0, 1], "noise": [3, 0, 2, 0]}
    finals = {}
    for s, r in rate.items():
        for seed in range(4):
            finals[s, seed] = write_run(tmp_path / "runs" / f"{s}-seed{seed}", strategy=s, seed=seed,
                                        rate=r + 0.004 * jitter[s][seed], steps=20, eval_only="held",
                                        target_offset=0.01 * jitter[s][seed])
    runs = load_runs([tmp_path / "runs"])
    rows = comparisons(aggregate_table(runs_table(runs)), ("uniform", "natural"), ("val/loss", "val/target"))
    assert len(rows) == 8 and {r["variant"] for r in rows} == {"good", "noise"}
    by = {(r["variant"], r["baseline"], r["score"]): r for r in rows}
    from scipy.stats import ttest_rel

    ps = {k: ttest_rel([finals[k[0], s][k[2]] for s in range(4)], [finals[k[1], s][k[2]] for s in range(4)]).pvalue
          for k in by}
    for k, r in by.items():
        assert r["p"] == pytest.approx(ps[k])
    smallest = min(ps, key=ps.get)
    assert by[smallest]["p_holm"] == pytest.approx(min(1.0, 8 * ps[smallest]))  # first step: m x p
    assert by["good", "uniform", "val/loss"]["verdict"] == by["good", "natural", "val/loss"]["verdict"] == "win"
    assert by["noise", "uniform", "val/loss"]["verdict"] == "n.s."
    assert survivors(rows, ("uniform", "natural"), "val/loss") == ["good"]

    write_report(runs, tmp_path / "out")
    md = (tmp_path / "out" / "report.md").read_text()
    table = {(r[0], r[1], r[2]): r for r in _table_rows(md, "Multiple comparisons (Holm–Bonferroni)")}
    assert len(table) == 8 and table["good", "uniform", "val/loss"][-1] == "win"
    assert table["noise", "uniform", "val/loss"][-1] == "n.s."
    assert "8 comparisons in the family" in md
    assert "val/loss: wins that survive Holm: good vs uniform, good vs natural" in md
    assert "beats min(uniform, natural) (wins against both) after correction: good" in md
    assert "Scale: unknown parameters" in md and "5,120 training tokens per run (20 steps" in md


def test_model_parameters_counts_the_real_model():
    import torch

    from mixtrain.model.gpt import GPT, GPTConfig

    config = {"seq_len": 32, "batch_size": 4, "tokenizer": {"vocab_size": 300},
              "model": {"_target_": "mixtrain.model.gpt.GPTConfig", "vocab_size": None, "seq_len": 32, "n_layer": 2,
                        "n_head": 2, "d_model": 32, "tie_embeddings": False}}
    torch.manual_seed(0)
    real = GPT(GPTConfig(vocab_size=300, seq_len=32, n_layer=2, n_head=2, d_model=32, tie_embeddings=False))
    total = sum(p.numel() for p in real.parameters())
    assert model_parameters(config) == (total, total - 300 * 32)
    assert model_parameters({"model": {"n_layer": 2}}) is None and model_parameters(None) is None
