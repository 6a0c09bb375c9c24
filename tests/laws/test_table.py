"""Observation table: round trip, and one error per kind of bad table, naming column and row."""

from __future__ import annotations

import numpy as np
import pytest

from mixtrain.laws.table import parse_domain_values, read_mixtures, read_table, write_table

GOOD = """run,step,tokens,w/code,w/prose,loss/code,loss/prose
a,100,1000,0.5,0.5,3.0,3.5
a,200,2000,0.5,0.5,2.8,3.3
b,100,1000,0.2,0.8,3.4,3.2
b,200,2000,0.2,0.8,3.1,3.0
"""


def write(tmp_path, text, name="t.csv"):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def test_read_good_table_and_round_trip(tmp_path):
    t = read_table(write(tmp_path, GOOD))
    assert t.train_domains == ("code", "prose") and t.eval_domains == ("code", "prose")
    assert t.run_names == ["a", "b"] and t.n_rows == 4 and t.n_mixtures() == 2
    np.testing.assert_allclose(t.W[2], [0.2, 0.8])
    np.testing.assert_allclose(t.L[:, 1], [3.5, 3.3, 3.2, 3.0])
    np.testing.assert_allclose(t.tokens, [1000, 2000, 1000, 2000])
    assert t.final_rows().tolist() == [1, 3]
    out = str(tmp_path / "back.csv")
    write_table(t, out)
    back = read_table(out)
    np.testing.assert_array_equal(back.W, t.W)
    np.testing.assert_array_equal(back.L, t.L)
    assert back.runs.tolist() == t.runs.tolist()


def test_eval_domains_may_differ_from_training_domains(tmp_path):
    t = read_table(write(tmp_path, "run,step,w/code,w/prose,loss/held_out\na,10,0.5,0.5,3.0\n"))
    assert t.train_domains == ("code", "prose") and t.eval_domains == ("held_out",)


@pytest.mark.parametrize(
    "text, message",
    [
        (GOOD.replace("run,", "name,", 1), "missing column 'run'"),
        (GOOD.replace(",step,", ",stp,", 1), "missing column 'step'"),
        ("run,step,loss/code\na,1,3.0\n", r"missing columns: no 'w/<domain>'"),
        ("run,step,w/code\na,1,1.0\n", r"missing columns: no 'loss/<domain>'"),
        (GOOD.replace("loss/prose", "los/prose"), r"unknown column\(s\) \['los/prose'\]"),
        (GOOD.replace("2.8,3.3", "nan,3.3"), r"line 3, run 'a' step 200: column 'loss/code' is nan"),
        (GOOD.replace("3.1,3.0", "3.1,inf"), r"line 5, run 'b' step 200: column 'loss/prose' is inf"),
        (GOOD.replace("3.4,3.2", "-1.0,3.2"), r"line 4, run 'b' step 100: column 'loss/code' is -1.0 \(must be > 0"),
        (GOOD.replace("0.2,0.8,3.4", "-0.2,1.2,3.4"), r"line 4, run 'b' step 100: column 'w/code' is negative"),
        (GOOD.replace("0.2,0.8,3.1", "0.2,0.7,3.1"), r"line 5, run 'b' step 200: the 'w/\*' columns sum to 0.9"),
        (GOOD.replace("0.5,0.5,2.8", ",0.5,2.8"), r"line 3, run 'a' step '200': empty cell in column 'w/code'"),
        (GOOD.replace("0.5,0.5,2.8", "half,0.5,2.8"), r"column 'w/code' is not a number: 'half'"),
        (GOOD.replace("a,200,", "a,100,"), r"line 3, run 'a' step 100: duplicate observation"),
        (GOOD.replace("a,100,", "a,0,"), r"line 2, run 'a' step 0: column 'step' is 0.0 \(must be finite and > 0"),
        ("run,step,w/code,loss/code\n", "the table has no rows"),
    ],
)
def test_bad_tables_name_the_problem(tmp_path, text, message):
    with pytest.raises(ValueError, match=message):
        read_table(write(tmp_path, text))


def test_weight_sum_tolerance(tmp_path):
    read_table(write(tmp_path, GOOD.replace("0.2,0.8,3.1", "0.2,0.8000005,3.1")))  # within 1e-6
    with pytest.raises(ValueError, match="sum to 1.00001"):
        read_table(write(tmp_path, GOOD.replace("0.2,0.8,3.1", "0.2,0.80001,3.1")))


def test_too_few_runs_for_a_law(tmp_path):
    t = read_table(write(tmp_path, GOOD))
    with pytest.raises(ValueError, match=r"exp: the table .* has 2 distinct mixture\(s\); this law needs at least 4"):
        t.require(law="exp", min_mixtures=4)
    with pytest.raises(ValueError, match=r"transfer: the table .* has 2 run\(s\); this law needs at least 3"):
        t.require(law="transfer", min_runs=3)
    from mixtrain.laws import make_law

    with pytest.raises(ValueError, match="transfer: .* needs at least 3"):
        make_law("transfer").fit(t)


def test_read_mixtures_normalises_and_checks_domains(tmp_path):
    header, rows, W, steps = read_mixtures(write(tmp_path, "w/code,w/prose,note\n50,50,x\n1,3,y\n"), ["code", "prose"])
    np.testing.assert_allclose(W, [[0.5, 0.5], [0.25, 0.75]])
    assert steps is None and header == ["w/code", "w/prose", "note"]
    with pytest.raises(ValueError, match=r"missing \['w/prose'\]"):
        read_mixtures(write(tmp_path, "w/code,step\n1,10\n"), ["code", "prose"])
    with pytest.raises(ValueError, match="weight of domain 'prose' is negative"):
        read_mixtures(write(tmp_path, "w/code,w/prose\n1,-1\n"), ["code", "prose"])


def test_parse_domain_values():
    assert parse_domain_values("code=2,prose=1", "x") == {"code": 2.0, "prose": 1.0}
    assert parse_domain_values("0.5", "x") == 0.5
    assert parse_domain_values(None, "x") is None
    with pytest.raises(ValueError, match="'code' is not a number"):
        parse_domain_values("code=two", "--importance")
