"""bench/probe.py runs: a tiny configuration prints its cost table and the sketch error table, with the
measured RMS error below the stated sqrt(2/d) bound at every d."""

from __future__ import annotations

import re


def test_bench_probe_prints_cost_and_error_tables(load_bench, capsys):
    bench = load_bench("probe")
    bench.main(["--domains", "2,4", "--every", "10,100", "--steps", "1", "--d-model", "32", "--n-layer", "1",
                "--seq-len", "16", "--vocab", "128", "--micro-batch", "2", "--accumulate", "1",
                "--samples-per-domain", "2", "--sketch-dim", "256"])
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if re.match(r"^\| (2|4) \|", line)]
    assert len(rows) == 2 and all(line.count("%") == 2 for line in rows)
    errors = [line.split("|") for line in out.splitlines() if re.match(r"^\| \d{3,5} \| 0\.", line)]
    assert len(errors) == 4 and all(float(e[2]) < float(e[3]) for e in errors), errors
