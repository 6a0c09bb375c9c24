"""`mixtrain fit-meta` (fitting/meta_fit.py): vectors from embeddings, a law fitted over two domain sets
in meta-domain space, predictions for mixtures of the new set."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from mixtrain.fitting.meta_fit import main
from mixtrain.laws.synthetic import World, synthetic_table
from mixtrain.laws.table import write_table


def test_fit_on_two_domain_sets_and_predict_the_new_sets_mixtures(tmp_path, capsys):
    rng = np.random.default_rng(0)
    world, m = World(4, 0), 4
    VA, VB = rng.dirichlet(np.full(m, 0.5), size=4), rng.dirichlet(np.full(m, 0.5), size=3)
    A, B = ["a0", "a1", "a2", "a3"], ["b0", "b1", "b2"]
    (tmp_path / "V.json").write_text(json.dumps({d: v.tolist() for d, v in zip(A + B, np.vstack([VA, VB]))}))
    for name, V, names, n in (("A", VA, A, 30), ("B", VB, B, 6)):
        table = synthetic_table(lambda W_, s, V=V: world.loss(W_ @ V, s), rng.dirichlet(np.ones(len(names)), size=n),
                                [world.s_ref], names, eval_domains=world.domains, noise=0.0, seed=1, run_prefix=name)
        write_table(table, str(tmp_path / f"{name}.csv"))
    main(["--table", str(tmp_path / "A.csv"), "--table", str(tmp_path / "B.csv"), "--domain-vectors",
          str(tmp_path / "V.json"), "--law", "ridge", "--folds", "0", "--out", str(tmp_path / "law.json")])
    assert "fitted on 36 runs" in capsys.readouterr().out
    cand = rng.dirichlet(np.ones(3), size=50)
    with open(tmp_path / "mix.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow([f"w/{d}" for d in B])
        w.writerows(cand.tolist())
    main(["--law-file", str(tmp_path / "law.json"), "--domain-vectors", str(tmp_path / "V.json"), "--predict",
          str(tmp_path / "mix.csv"), "--step", str(world.s_ref), "--out", str(tmp_path / "pred.csv")])
    with open(tmp_path / "pred.csv") as f:
        rows = list(csv.DictReader(f))
    pred = np.array([[float(r[f"loss/{d}"]) for d in world.domains] for r in rows]).mean(axis=1)
    true = world.loss(cand @ VB, np.full(50, world.s_ref)).mean(axis=1)
    from mixtrain.laws.cross_validation import spearman

    assert len(rows) == 50 and spearman(pred, true) > 0.8
    # vectors of another meta-domain set than the law's are refused
    (tmp_path / "V2.json").write_text(json.dumps({d: [0.5, 0.5] for d in B}))
    with pytest.raises(ValueError, match="vectors over 2 meta-domains, the law"):
        main(["--law-file", str(tmp_path / "law.json"), "--domain-vectors", str(tmp_path / "V2.json"), "--predict",
              str(tmp_path / "mix.csv"), "--step", "1", "--out", str(tmp_path / "p2.csv")])


def test_domain_vectors_from_embeddings(tiny_raw_dir, tmp_path):
    from mixtrain.embed.pipeline import embed_corpus

    embed_corpus(tiny_raw_dir, tmp_path / "E", options={"dim": 16})
    main(["--vectors-from", str(tmp_path / "E"), "--meta-domains", "6", "--out", str(tmp_path / "V.json")])
    vectors = json.loads((tmp_path / "V.json").read_text())
    assert sorted(vectors) == ["code", "prose", "tables"]
    assert all(len(v) == 6 and sum(v) == pytest.approx(1.0) for v in vectors.values())
    # three clearly different domains fall into mostly different meta-domains
    top = {d: int(np.argmax(v)) for d, v in vectors.items()}
    assert len(set(top.values())) == 3
