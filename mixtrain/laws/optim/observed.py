"""Step 7 of the sampled optimiser, opt-in (`prefer_best_run`, `mixtrain fit --optimize --prefer-best-run`, on in
the sequential round loop): the best observed run replaces the written mixture when its measured loss, carried
to the target step by the law, is lower than the law's prediction for the written mixture.

Place in the flow: decision.py (steps 5-6: the written mixture) -> **observed** -> Proposal -> weights.yaml.
Pure numpy.

Why: after a sequential search (`mixtrain proxy --next`) the runs sit near the predicted optimum, and a
measured run there is worth more than the law's extrapolation: on the synthetic worlds (bench/search.py,
BENCHMARKS.md "Sequential proxy search") the best run after 32-64 sequential runs had lower true regret than the
written (shrunk) mixture. After a blind random batch the best run is far from the optimum and the rule rarely
fires, but it cost regret there at 32 runs on the development worlds (8 domains), so it is not the default of
`fit --optimize`. The carried loss is the run's measured loss plus the law's predicted change from the run's
last step to the target step (equal steps: the measured loss itself); both sides are the same law's view, so
a bias the law shares between the two mixtures cancels. The written mixture was already checked against
uniform (step 5); a run measured below its prediction keeps that check.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from mixtrain.laws.base import MixingLaw

__all__ = ["best_run_instead"]


def best_run_instead(law: MixingLaw, written: np.ndarray, step: float,
                     w: np.ndarray) -> tuple[str, np.ndarray, float, float] | None:
    """(run, its mixture, its loss carried to `step`, the written mixture's prediction) when the best observed run
    (lowest importance-weighted loss at its last step) is carried below the written mixture's prediction, else None."""
    t = law.table
    fin = t.final_rows()
    measured = t.L[fin] @ w
    i = int(np.argmin(measured))
    r = fin[i]
    Wr = t.W[r][None]
    at_own, at_target = (law._predict(Wr, np.array([s], float)) @ w for s in (t.steps[r], step))
    carried = float(measured[i] + at_target[0] - at_own[0])
    predicted = float((law._predict(np.asarray(written, float)[None], np.array([step], float)) @ w)[0])
    if carried < predicted:
        return str(t.runs[r]), t.W[r].copy(), carried, predicted
    return None
