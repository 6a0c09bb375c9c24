"""fit warns about a domain that no proxy run trained on (issue 30): the law has no observation of
its effect, and --optimize used to write it at the support floor without a word."""

from __future__ import annotations

from mixtrain.fitting import fit as fit_mod
from mixtrain.laws.synthetic import dirichlet_mixtures, synthetic_table
from mixtrain.laws.table import read_table, write_table

DOMAINS = ["code", "prose", "web"]


def _loss(W, s):
    return (W + 1e-3) ** -0.1 * (20.0 * s[:, None] ** -0.5 + 2.0)


def test_a_domain_at_weight_0_in_every_run_is_warned_about(tmp_path, capsys):
    mixtures = dirichlet_mixtures(3, 8, seed=1)
    mixtures[:, 2] = 0.0  # web: never trained on by any proxy run
    mixtures /= mixtures.sum(axis=1, keepdims=True)
    path = tmp_path / "T.csv"
    write_table(synthetic_table(_loss, mixtures, [100, 200, 400, 800], DOMAINS, noise=0.002), str(path))
    assert fit_mod.unobserved_domains(read_table(str(path))) == ["web"]
    fit_mod.main(["--table", str(path), "--law", "exp", "--out", str(tmp_path / "law.json")])
    err = capsys.readouterr().err
    assert "domain 'web' has weight 0 in every one of the 32 rows" in err and "extrapolation" in err
    assert "'code'" not in err and "'prose'" not in err
    observed = synthetic_table(_loss, dirichlet_mixtures(3, 8, seed=1), [100], DOMAINS, noise=0.002)
    assert fit_mod.unobserved_domains(observed) == []
