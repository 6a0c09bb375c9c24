"""mixtrain.report: run loading, ranking, aggregates, multirun discovery, figures, report.md."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest

from mixtrain.report import aggregate_table, find_runs, load_run, load_runs, main, runs_table, write_report

DOMAINS = ["code", "prose", "web"]
FLOOR = {"code": 1.2, "prose": 2.0, "web": 2.4}
TOKENS_PER_STEP = 256


def _weights_at(step, schedule):
    """schedule: [(from_step, {domain: w})], sorted."""
    current = schedule[0][1]
    for start, w in schedule:
        if step >= start:
            current = w
    return current


def write_run(run_dir: Path, *, strategy: str, seed: int, rate: float, steps: int = 40, val_every: int = 10,
              schedule=None, refits: bool = False, summary: bool = True, wall: float = 30.0,
              eval_only: str | None = None, target_offset: float = 0.0) -> dict:
    """A fake run directory in the documented format; returns the final val losses it wrote.

    eval_only: a domain with val/<d>/loss only (no mix/, no train/), which is also the run's target
    (val/target = its loss, summary target_importance {d: 1}); its loss is code's + target_offset."""
    rng = np.random.default_rng(seed)
    schedule = schedule or [(0, {d: 1 / len(DOMAINS) for d in DOMAINS})]
    header = ["step", "tokens", "train/loss", "val/loss"] + sorted(
        [f"train/{d}/loss" for d in DOMAINS] + [f"val/{d}/loss" for d in DOMAINS] + [f"mix/{d}" for d in DOMAINS]
        + [f"mix/tokens/{d}" for d in DOMAINS] + ["perf/tokens_per_s"]
        + ([f"val/{eval_only}/loss", "val/target"] if eval_only else []))
    tokens = dict.fromkeys(DOMAINS, 0.0)
    final: dict = {}
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / "metrics.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=header)
        writer.writeheader()
        for step in range(1, steps + 1):
            w = _weights_at(step, schedule)
            for d in DOMAINS:
                tokens[d] += w[d] * TOKENS_PER_STEP
            row = {"step": step, "tokens": step * TOKENS_PER_STEP, "perf/tokens_per_s": 1000 + rng.random()}
            train = {}
            for d in DOMAINS:
                if rng.random() < 0.8:  # a domain absent from a step's batch: empty cell
                    train[d] = FLOOR[d] + 4 * step ** -rate + 0.05 * rng.standard_normal()
                    row[f"train/{d}/loss"] = train[d]
                row[f"mix/{d}"] = w[d]
                row[f"mix/tokens/{d}"] = tokens[d]
            row["train/loss"] = float(np.mean(list(train.values()))) if train else ""
            if step % val_every == 0:
                val = {d: FLOOR[d] + 3 * step ** -rate + 0.001 * seed for d in DOMAINS}
                for d in DOMAINS:
                    row[f"val/{d}/loss"] = val[d]
                row["val/loss"] = float(np.mean(list(val.values())))
                final = {f"val/{d}/loss": v for d, v in val.items()} | {"val/loss": row["val/loss"]}
                if eval_only:
                    row[f"val/{eval_only}/loss"] = row["val/target"] = val["code"] + target_offset
                    final |= {f"val/{eval_only}/loss": row["val/target"], "val/target": row["val/target"]}
            writer.writerow(row)
    final |= {f"mix/{d}": w[d] for d in DOMAINS} | {f"mix/tokens/{d}": tokens[d] for d in DOMAINS}
    (run_dir / "config.yaml").write_text(f"seed: {seed}\nmixing:\n  name: {strategy}\n  max_epochs: null\n")
    if summary:
        (run_dir / "summary.json").write_text(json.dumps({
            "strategy": strategy, "seed": seed, "wall_time_s": wall, "step": steps,
            "tokens": steps * TOKENS_PER_STEP, "final": final,
            "target_importance": {eval_only: 1.0} if eval_only else None}))
    if refits:
        with open(run_dir / "refits.jsonl", "w") as f:
            for (_, old), (start, new) in zip(schedule, schedule[1:]):
                f.write(json.dumps({"step": start, "status": "updated", "old_weights": old, "new_weights": new,
                                    "error": None}) + "\n")
            f.write(json.dumps({"step": steps, "status": "kept", "old_weights": schedule[-1][1],
                                "new_weights": None, "error": None}) + "\n")
    return final


ONLINE = [(0, {"code": 1 / 3, "prose": 1 / 3, "web": 1 / 3}), (10, {"code": 0.5, "prose": 0.3, "web": 0.2}),
          (20, {"code": 0.6, "prose": 0.25, "web": 0.15}), (30, {"code": 0.55, "prose": 0.3, "web": 0.15})]


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    """A Hydra-multirun-like sweep of four runs plus one stand-alone run without summary.json."""
    root = tmp_path_factory.mktemp("report")
    sweep = root / "sweep"
    finals = {
        "mixing=uniform,seed=0": write_run(sweep / "mixing=uniform,seed=0", strategy="uniform", seed=0, rate=0.30),
        "mixing=uniform,seed=1": write_run(sweep / "mixing=uniform,seed=1", strategy="uniform", seed=1, rate=0.32),
        "mixing=natural,seed=0": write_run(sweep / "mixing=natural,seed=0", strategy="natural", seed=0, rate=0.25,
                                           schedule=[(0, {"code": 0.2, "prose": 0.5, "web": 0.3})]),
        "mixing=online,seed=0": write_run(sweep / "mixing=online,seed=0", strategy="online", seed=0, rate=0.45,
                                          schedule=ONLINE, refits=True),
        "temperature-seed0": write_run(root / "single" / "temperature-seed0", strategy="temperature", seed=0,
                                       rate=0.38, summary=False),
    }
    (sweep / "multirun.yaml").write_text("hydra: {}\n")
    out = root / "out"
    main([str(sweep), str(root / "single" / "temperature-seed0"), "--out", str(out)])
    return {"root": root, "sweep": sweep, "finals": finals, "out": out, "md": (out / "report.md").read_text()}


def _table_rows(md: str, section: str) -> list[list[str]]:
    body = md.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in body.splitlines() if line.startswith("|")][2:]  # skip header and separator
    return [[c.strip() for c in line.strip("|").split(" | ")] for line in lines]


def test_one_row_per_run_sorted_by_mean_val_loss_winner_highlighted(experiment):
    rows = _table_rows(experiment["md"], "Runs")
    expected = sorted(experiment["finals"], key=lambda n: experiment["finals"][n]["val/loss"])
    assert [r[1].strip("*") for r in rows] == expected
    assert expected[0] == "mixing=online,seed=0"
    assert rows[0][0] == "**1 (best)**" and all(c.startswith("**") for c in rows[0][:4])
    assert not any(c.startswith("**") for c in rows[1][:4])
    no_summary = next(r for r in rows if r[1] == "temperature-seed0")
    assert "no summary.json" in no_summary[-1]


def test_aggregate_mean_std_matches_numpy(experiment):
    runs = load_runs([experiment["sweep"]])
    aggs = {a["variant"]: a for a in aggregate_table(runs_table(runs))}
    uniform = [experiment["finals"][f"mixing=uniform,seed={s}"]["val/loss"] for s in (0, 1)]
    assert aggs["uniform"]["n"] == 2 and sorted(aggs["uniform"]["seeds"]) == [0, 1]
    assert aggs["uniform"]["val/loss"]["mean"] == pytest.approx(np.mean(uniform))
    assert aggs["uniform"]["val/loss"]["std"] == pytest.approx(np.std(uniform, ddof=1))
    code = [experiment["finals"][f"mixing=uniform,seed={s}"]["val/code/loss"] for s in (0, 1)]
    assert aggs["uniform"]["val/code/loss"]["std"] == pytest.approx(np.std(code, ddof=1))
    assert aggs["natural"]["val/loss"]["std"] is None  # one run: no spread
    cell = f"{np.mean(uniform):.4f} ± {np.std(uniform, ddof=1):.4f}"
    assert any(r[0] == "uniform" and r[3] == cell for r in _table_rows(experiment["md"], "Strategies"))
    # paired by seed: every strategy's difference to the uniform run of the same seed
    for variant, agg in aggs.items():
        diffs = [experiment["finals"][run]["val/loss"] - experiment["finals"][f"mixing=uniform,seed={s}"]["val/loss"]
                 for run, s in zip(agg["runs"], agg["seeds"]) if s in (0, 1)]
        if diffs:
            assert agg["vs_uniform_paired"]["mean"] == pytest.approx(np.mean(diffs)), variant
    assert aggs["uniform"]["vs_uniform_paired"]["mean"] == 0.0


def test_headline_names_winner_and_margins_vs_baselines(experiment):
    f = experiment["finals"]
    best = f["mixing=online,seed=0"]["val/loss"]
    uniform = np.mean([f[f"mixing=uniform,seed={s}"]["val/loss"] for s in (0, 1)])
    natural = f["mixing=natural,seed=0"]["val/loss"]
    line = next(line for line in experiment["md"].splitlines() if "best: online" in line)
    assert f"mean val loss {best:.4f}" in line
    assert ("vs uniform " + f"{best - uniform:+.4f} (".replace("-", "\u2212")) in line
    assert ("vs natural " + f"{best - natural:+.4f} (".replace("-", "\u2212")) in line
    assert "final weights of online: code=0.550 prose=0.300 web=0.150" in experiment["md"]


def test_figures_exist_and_are_linked(experiment):
    out, md = experiment["out"], experiment["md"]
    links = re.findall(r"\]\(([^)]+\.png)\)", md)
    for name in ["val_loss_all.png", "final_val_loss.png", "final_weights.png", "paired_ci.png"]:
        assert name in links
    for run in experiment["finals"]:
        for fig in ["val_loss", "train_loss", "weights", "tokens"]:
            assert f"runs/{run}/{fig}.png" in links
    assert len(links) == 4 + 4 * len(experiment["finals"])
    for link in links:
        assert (out / link).stat().st_size > 1000, link


def test_refit_events_reported(experiment):
    refits = experiment["md"].split("## Refits\n", 1)[1].split("\n## ", 1)[0]
    assert "**mixing=online,seed=0**: 4 refits (1 kept, 3 updated)" in refits
    assert "last weights (step 30): code=0.550 prose=0.300 web=0.150" in refits
    assert "mixing=uniform" not in refits


def test_run_without_summary_uses_last_metrics(experiment):
    run = load_run(experiment["root"] / "single" / "temperature-seed0")
    assert not run.has_summary and run.strategy == "temperature" and run.seed == 0
    assert run.summary["wall_time_s"] is None and run.summary["step"] == 40
    row = runs_table([run])[0]
    final = experiment["finals"]["temperature-seed0"]
    for key in ["val/code/loss", "val/web/loss", "val/loss", "mix/code"]:
        assert row[key] == pytest.approx(final[key])
    assert row["tokens"] == 40 * TOKENS_PER_STEP


def test_multirun_discovery_groups_and_name_collisions(tmp_path):
    for sweep in ["a", "b"]:  # Hydra's default dated layout, numbered job folders, twice
        for job in ["0", "1"]:
            write_run(tmp_path / "multirun" / sweep / "12-00-00" / job, strategy="uniform", seed=int(job), rate=0.3,
                      steps=10)
    (tmp_path / "multirun" / "a" / "12-00-00" / "0" / "checkpoints").mkdir()
    (tmp_path / "multirun" / "a" / "12-00-00" / "0" / "checkpoints" / "metrics.csv").write_text("step\n1\n")
    found = find_runs([tmp_path / "multirun"])
    assert [p.relative_to(tmp_path / "multirun").as_posix() for p in found] == \
        ["a/12-00-00/0", "a/12-00-00/1", "b/12-00-00/0", "b/12-00-00/1"]
    runs = load_runs([tmp_path / "multirun" / "a", tmp_path / "multirun" / "b"])
    assert [r.name for r in runs] == ["a/12-00-00/0", "a/12-00-00/1", "b/12-00-00/0", "b/12-00-00/1"]
    assert [r.group for r in runs] == ["a/12-00-00"] * 2 + ["b/12-00-00"] * 2
    single = load_runs([tmp_path / "multirun" / "a" / "12-00-00" / "0"])
    assert single[0].name == "0" and single[0].group is None


def test_bad_inputs_name_the_path(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "metrics.csv").write_text("")
    (tmp_path / "header").mkdir()
    (tmp_path / "header" / "metrics.csv").write_text("step,tokens,val/loss\n")
    (tmp_path / "nothing").mkdir()
    with pytest.raises(ValueError, match=r"empty/metrics.csv: empty file"):
        load_run(tmp_path / "empty")
    with pytest.raises(ValueError, match=r"header/metrics.csv: a header but no rows"):
        load_run(tmp_path / "header")
    with pytest.raises(FileNotFoundError, match=r"nothing/metrics.csv: no metrics.csv"):
        load_run(tmp_path / "nothing")
    with pytest.raises(SystemExit, match=r"nothing: no metrics.csv in it or below it"):
        main([str(tmp_path / "nothing"), "--out", str(tmp_path / "out")])
    with pytest.raises(SystemExit, match=r"empty/metrics.csv: empty file"):
        main([str(tmp_path / "empty"), "--out", str(tmp_path / "out")])


def test_rows_without_validation_are_reported_not_fatal(tmp_path):
    write_run(tmp_path / "ok", strategy="uniform", seed=0, rate=0.3, steps=20)
    write_run(tmp_path / "noval", strategy="natural", seed=0, rate=0.3, steps=5, val_every=100, summary=False)
    rows = runs_table(load_runs([tmp_path / "ok", tmp_path / "noval"]))
    assert [r["run"] for r in rows] == ["ok", "noval"] and rows[0]["best"] and not rows[1]["best"]
    assert np.isnan(rows[1]["val/loss"]) and "no validation rows" in rows[1]["notes"]


def test_law_plot_against_table(tmp_path):
    laws = pytest.importorskip("mixtrain.laws", reason="mixtrain.laws is not in this tree yet")
    if not hasattr(laws, "load_law"):
        pytest.skip("mixtrain.laws exposes no load_law yet")
    from mixtrain.laws.synthetic import dirichlet_mixtures, synthetic_table
    from mixtrain.laws.table import write_table

    alpha, c = np.array([0.1, 0.2, 0.15]), np.array([1.2, 2.0, 2.4])

    def loss(W, s):
        return (W + 1e-3) ** -alpha * (10 * s[:, None] ** -0.4 + c)

    table = synthetic_table(loss, dirichlet_mixtures(3, 8, seed=0), [10, 20, 40, 80], DOMAINS, noise=0.002)
    write_table(table, str(tmp_path / "table.csv"))
    laws.make_law("bimix").fit(table, cv_folds=0).to_json(str(tmp_path / "law.json"))
    write_run(tmp_path / "run", strategy="uniform", seed=0, rate=0.3, steps=20)
    main([str(tmp_path / "run"), "--out", str(tmp_path / "out"), "--law", str(tmp_path / "law.json"),
          "--table", str(tmp_path / "table.csv")])
    md = (tmp_path / "out" / "report.md").read_text()
    assert "## Law vs observations" in md and "law `bimix`" in md and "8 runs, 32 rows" in md
    assert (tmp_path / "out" / "law_fit.png").stat().st_size > 1000
    mre = _table_rows(md, "Law vs observations")
    assert [r[0] for r in mre] == DOMAINS and all(float(r[1].rstrip("%")) < 5 for r in mre)


def test_variants_split_by_mixing_config_and_resumed_steps_dedupe(tmp_path):
    for t, seed in [(2.0, 0), (2.0, 1), (3.0, 0)]:
        run = tmp_path / f"temperature-T{t:g}-seed{seed}"
        write_run(run, strategy="temperature", seed=seed, rate=0.3 + t / 100, steps=20)
        (run / "config.yaml").write_text(f"seed: {seed}\nmixing:\n  name: temperature\n  temperature: {t}\n")
    resumed = tmp_path / "temperature-T2-seed0" / "metrics.csv"
    lines = resumed.read_text().splitlines()
    resumed.write_text("\n".join(lines + lines[-5:]) + "\n")  # steps 16..20 logged again after a resume
    run = load_run(resumed.parent)
    assert run.metrics["step"].tolist() == list(range(1, 21))
    aggs = aggregate_table(runs_table(load_runs([tmp_path])))
    assert {a["variant"]: a["n"] for a in aggs} == {"temperature (temperature=2.0)": 2,
                                                    "temperature (temperature=3.0)": 1}
    # doremi's reference (a run or a model) is the uniform run of the same seed: one variant over seeds
    ref_dir = tmp_path.parent / f"{tmp_path.name}-doremi"
    for seed in range(2):
        run = ref_dir / f"doremi-seed{seed}"
        write_run(run, strategy="doremi", seed=seed, rate=0.3, steps=20)
        (run / "config.yaml").write_text(f"seed: {seed}\nmixing:\n  name: doremi\n  eta: 1.0\n"
                                         f"  reference_model: runs/uniform-seed{seed}\n")
    assert {a["variant"]: a["n"] for a in aggregate_table(runs_table(load_runs([ref_dir])))} == {"doremi": 2}


def test_paired_ci_vs_uniform_and_natural_on_mean_and_target(tmp_path):
    """5 seeds x 3 strategies with an eval-only target domain: t-intervals over seeds, both baselines."""
    from scipy.stats import t

    rate = {"uniform": 0.30, "natural": 0.28, "x": 0.33}
    offset = {"uniform": 0.5, "natural": 0.4, "x": 0.7}
    finals = {}
    for strategy in rate:
        for seed in range(5):
            finals[strategy, seed] = write_run(
                tmp_path / "runs" / f"{strategy}-seed{seed}", strategy=strategy, seed=seed,
                rate=rate[strategy] + 0.004 * ((seed * 7 + len(strategy)) % 5), steps=20, eval_only="held",
                target_offset=offset[strategy] + 0.01 * ((seed * 3 + len(strategy)) % 4))
    runs = load_runs([tmp_path / "runs"])
    assert all(r.eval_only_domains == ["held"] and "held" not in r.train_domains for r in runs)
    aggs = {a["variant"]: a for a in aggregate_table(runs_table(runs))}
    for base in ("uniform", "natural"):
        for score in ("val/loss", "val/target"):
            diffs = np.array([finals["x", s][score] - finals[base, s][score] for s in range(5)])
            ci = aggs["x"]["paired"][base][score]
            half = t.ppf(0.975, 4) * diffs.std(ddof=1) / np.sqrt(5)
            assert ci["n"] == 5 and ci["mean"] == pytest.approx(diffs.mean())
            assert (ci["lo"], ci["hi"]) == pytest.approx((diffs.mean() - half, diffs.mean() + half))
            assert aggs[base]["paired"][base][score]["mean"] == 0.0
    # x's target is worse than uniform's by 0.2 +- 0.03 on every seed: the interval excludes 0
    assert aggs["x"]["paired"]["uniform"]["val/target"]["lo"] > 0
    write_report(runs, tmp_path / "out")
    md = (tmp_path / "out" / "report.md").read_text()
    rows = {r[0].strip("*"): [c.removeprefix("**").removesuffix("**") for c in r]  # the best row is bold
            for r in _table_rows(md, "Strategies")}
    header = md.split("## Strategies\n", 1)[1].split("\n## ", 1)[0]
    assert "held (eval-only)" in header and "target vs natural [95% CI]" in header
    ci = aggs["x"]["paired"]["uniform"]["val/target"]
    cell = f"{ci['mean']:+.4f} [{ci['lo']:+.4f}, {ci['hi']:+.4f}] *".replace("-", "\u2212")
    assert rows["x"][7] == cell
    assert rows["x"][6] == f"{aggs['x']['val/target']['mean']:.4f} ± {aggs['x']['val/target']['std']:.4f}"
    assert "target loss vs uniform (paired by seed, 95% CI excludes 0, uncorrected): better: natural; worse: x" in md
    assert (tmp_path / "out" / "paired_ci.png").stat().st_size > 1000
