"""Shared fixtures of the law tests."""

from __future__ import annotations

import pytest

from mixtrain.laws import BiMixLaw


@pytest.fixture
def fake_laws(monkeypatch):
    """fake_laws(spec): name -> fake law class whose CV under fold seed s has decision regret spec[name][0][s]
    (random-pick regret 1) and mean-loss Spearman spec[name][1]: the auto rule sees exactly these numbers."""
    import mixtrain.laws.law_choice as choice

    def cv(regret, rho):
        return {"regret_top1": regret, "regret_topk": regret, "regret_random": 1.0,
                "mean_loss_spearman": rho, "mean_spearman": 0.9, "mean_mre": 0.01}

    def make(spec):
        def fake(name):
            class Fake(BiMixLaw):
                def fit(self, table, *, cv_folds=5, seed=0, importance=None):
                    super().fit(table, cv_folds=0)
                    self.name = name
                    self.report["cv"] = cv(spec[name][0][seed], spec[name][1])
                    return self
            Fake.name = name
            return Fake

        monkeypatch.setattr(choice, "cross_validate",
                            lambda law, table, folds, seed, importance: cv(spec[law.name][0][seed], spec[law.name][1]))
        return {name: fake(name) for name in spec}

    return make
