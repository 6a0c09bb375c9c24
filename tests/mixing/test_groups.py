"""Hierarchical weights: group resolution (mixing/groups.py) and any strategy over groups (mixing/grouped.py)."""

from __future__ import annotations

import math

import pytest

from mixtrain.mixing import build_mixing
from mixtrain.mixing.base import DataContext, MixHistory
from mixtrain.mixing.groups import expand, group_means, resolve_groups

DOMAINS = ["web_en", "web_de", "web_fr", "code_py", "code_rs", "books", "wiki"]
TOKENS = {"web_en": 6000, "web_de": 3000, "web_fr": 1000, "code_py": 4000, "code_rs": 1000, "books": 2000,
          "wiki": 2000}


def _ctx():
    return DataContext("/nowhere", list(DOMAINS), {d: {"num_train_tokens": n} for d, n in TOKENS.items()},
                       budget_tokens=10**6)


def test_globs_prefixes_and_catch_all_partition_the_domains():
    groups = resolve_groups(["web_*", "code", "*"], DOMAINS)
    assert groups == {"web_*": ["web_en", "web_de", "web_fr"], "code": ["code_py", "code_rs"], "*": ["books", "wiki"]}


@pytest.mark.parametrize("patterns, message", [
    (["web_*", "web_e*", "*"], r"'web_en' is named by \['web_\*', 'web_e\*'\]"),
    (["web_*", "code_*"], r"3 domain\(s\) in no group: \['books', 'wiki'\]|in no group"),
    (["web_*", "math_*", "*"], r"\['math_\*'\] name no domain"),
    ([], "empty"),
])
def test_bad_patterns_name_the_problem(patterns, message):
    with pytest.raises(ValueError, match=message):
        resolve_groups(patterns, DOMAINS)


def test_expand_and_group_means():
    groups = resolve_groups(["web_*", "*"], DOMAINS)
    w = expand({"web_*": 0.6, "*": 0.4}, groups, TOKENS)
    assert math.isclose(sum(w.values()), 1.0)
    assert math.isclose(w["web_en"], 0.6 * 6000 / 10000) and math.isclose(w["wiki"], 0.4 * 2000 / 9000)
    means = group_means({"web_en": 1.0, "web_de": 3.0, "web_fr": math.nan, "code_py": 2.0, "code_rs": 2.0,
                         "books": math.nan, "wiki": 5.0}, groups, {"web_en": 0.3, "web_de": 0.1})
    assert math.isclose(means["web_*"], (0.3 * 1.0 + 0.1 * 3.0) / 0.4) and means["*"] == 3.0


def test_manual_weights_per_glob_split_naturally_within():
    mixing = build_mixing({"strategy": "manual", "weights": {"web_*": 0.6, "code_*": 0.3, "*": 0.1},
                           "within": "natural"})
    w = mixing.strategy.initial_weights(_ctx())
    assert list(w) == ["web_en", "web_de", "web_fr", "code_py", "code_rs", "books", "wiki"]
    assert math.isclose(w["web_en"] + w["web_de"] + w["web_fr"], 0.6)
    assert math.isclose(w["code_py"], 0.3 * 4 / 5) and math.isclose(w["books"], 0.05)
    assert mixing.config["groups"] == ["web_*", "code_*", "*"]  # recorded in the checkpoint identity


@pytest.mark.parametrize("within, expected_de", [("uniform", 1 / 3), ("temperature", 3000 ** 0.5)])
def test_any_strategy_over_groups_with_a_within_rule(within, expected_de):
    args = {"temperature": 2.0} if within == "temperature" else {}
    w = build_mixing({"strategy": "uniform", "groups": ["web", "code", "*"], "within": within,
                      "within_args": args}).strategy.initial_weights(_ctx())
    assert math.isclose(w["web_en"] + w["web_de"] + w["web_fr"], 1 / 3)  # uniform over the 3 groups
    if within == "uniform":
        assert math.isclose(w["web_de"], 1 / 9)
    else:
        roots = sum(n ** 0.5 for d, n in TOKENS.items() if d.startswith("web"))
        assert math.isclose(w["web_de"], expected_de / roots / 3)


def test_online_strategy_refits_groups_and_keeps_within_shares():
    mixing = build_mixing({"strategy": "odm", "refit_every_n_steps": 1, "warmup_steps": 0,
                           "groups": ["web_*", "code_*", "*"], "within": "natural"})
    grouped = mixing.strategy
    w0 = grouped.initial_weights(_ctx())
    losses = {"web_en": 1.0, "web_de": 1.0, "web_fr": 1.0, "code_py": 4.0, "code_rs": 4.0, "books": 2.0,
              "wiki": math.nan}
    history = MixHistory(step=5, max_steps=100, weights=w0, tokens_seen={d: 100 for d in DOMAINS},
                         train_loss=losses, scheduled_weights=w0,
                         records=[{"step": 1, "new_weights": w0, "train_loss": losses}])
    inner_view = grouped.group_history(history)
    assert list(inner_view.weights) == ["web_*", "code_*", "*"] and inner_view.tokens_seen["web_*"] == 300
    assert inner_view.train_loss["*"] == 2.0  # wiki had no sample: the group's loss is books'
    assert set(inner_view.records[0]["new_weights"]) == {"web_*", "code_*", "*"}
    new = grouped.update(history)
    assert new is not None and set(new) == set(DOMAINS) and math.isclose(sum(new.values()), 1.0)
    # the high-loss code group gains weight; inside a group the natural split is kept
    assert new["code_py"] + new["code_rs"] > w0["code_py"] + w0["code_rs"]
    assert math.isclose(new["web_en"] / new["web_de"], 2.0) and math.isclose(new["code_py"] / new["code_rs"], 4.0)
    state = grouped.state_dict()
    fresh = build_mixing({"strategy": "odm", "groups": ["web_*", "code_*", "*"]}).strategy
    fresh.load_state_dict(state)
    assert fresh.state_dict() == state


def test_without_groups_the_identity_is_unchanged():
    plain = build_mixing({"strategy": "natural", "name": "natural", "max_epochs": None})
    with_defaults = build_mixing({"strategy": "natural", "name": "natural", "max_epochs": None, "groups": None,
                                  "within": "natural", "within_args": {}})
    assert plain.config == with_defaults.config
    with pytest.raises(ValueError, match="mixing.within='softmax'"):
        build_mixing({"strategy": "natural", "groups": ["*"], "within": "softmax"})


def test_strategies_that_need_real_domains_refuse_groups():
    with pytest.raises(ValueError, match="mixing.groups with mixing=entropy.*mixing.within=entropy"):
        build_mixing({"strategy": "entropy", "groups": ["*"]})


def test_a_run_with_group_weights_draws_the_resolved_domain_weights(tiny_data_dir, tmp_path):
    import csv
    from pathlib import Path

    from hydra import compose, initialize_config_dir

    from conftest import train_composed as train

    run = tmp_path / "run"
    conf = str(Path(__file__).resolve().parents[2] / "conf")
    with initialize_config_dir(config_dir=conf, version_base="1.3"):
        cfg = compose("train", overrides=[
            "experiment=smoke", f"data_dir={tiny_data_dir}", f"out_dir={run}", "prepare_if_missing=false",
            "seq_len=32", "batch_size=4", "val_blocks_per_domain=2", "table_at_end=false", "trainer.max_steps=2",
            "trainer.val_check_interval=2", "checkpoint_every_n_steps=2", "mixing=manual",
            "mixing.weights={c*: 0.5, *: 0.5}", "mixing.within=uniform"])
    train(cfg)
    with open(run / "metrics.csv", newline="") as f:
        first = next(csv.DictReader(f))
    assert float(first["mix/code"]) == pytest.approx(0.5)
    assert float(first["mix/prose"]) == pytest.approx(0.25) and float(first["mix/tables"]) == pytest.approx(0.25)
