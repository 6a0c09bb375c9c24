"""summary.py: the end-of-run table and the JSON-safe final metrics."""

from mixtrain.train.summary import domain_table, final_metrics


def test_table_lists_eval_only_domains_and_the_target():
    final = final_metrics({"val/a/loss": 2.0, "val/b/loss": 4.0, "val/t/loss": 5.5, "val/loss": 3.0,
                           "val/target": 5.5}, ["a", "b"], {"a": 0.25, "b": 0.75}, {"a": 100, "b": 300})
    table = domain_table(final, ["a", "b"], ["t"])
    lines = table.splitlines()
    row = {line.split("  ")[0].strip(): line.split() for line in lines if not line.startswith("-")}
    assert row["a"][1:] == ["2.0000", "0.2500", "100"]
    assert row["t (eval only)"][-3:] == ["5.5000", "-", "0"]  # never sampled: no weight, no tokens
    assert row["mean (unweighted)"][-2:] == ["3.0000", "400"]
    assert "target (importance-weighted)" in table and table.rstrip().endswith("5.5000")


def test_table_without_target_or_eval_domains_and_non_finite_loss():
    final = final_metrics({"val/a/loss": float("nan"), "val/loss": float("nan")}, ["a"], {"a": 1.0}, {"a": 7})
    assert final["val/a/loss"] is None  # JSON has no NaN
    table = domain_table(final, ["a"])
    assert "eval only" not in table and table.splitlines()[-1].split()[-1] == "-"  # target row, no value yet
    final = final_metrics({"val/a/loss": 2.0, "val/loss": 2.0, "val/target": 2.0}, ["a"], {"a": 1.0}, {"a": 7})
    # the default target = the mean: the row is still there, so every run's table has the same rows
    assert domain_table(final, ["a"]).splitlines()[-1].split() == ["target", "(importance-weighted)", "2.0000"]
    assert table.splitlines()[2].split()[1] == "-"
