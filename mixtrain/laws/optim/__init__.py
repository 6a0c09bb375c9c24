"""The optimisers: what a fitted law's mixture should be, above the laws they optimise.

Place in the flow: fitted law (mixtrain/laws/, law.json) -> **laws/optim/** -> weights.yaml
(`mixtrain.fitting.fit --optimize`, manual strategy) or the run's mixture directly (mixing=law,
`mixtrain.mixing.fitted_law`; the online refit of `mixtrain.mixing.online_bimix`).

Layering: these modules import the laws (laws/base.py's interface, laws/law_registry.py, laws/simplex.py,
laws/support.py, laws/table.py); no module of mixtrain/laws/ outside this package imports from here
(tests/laws/test_layering.py). A law offers a closed-form box optimum through its `_optimize` hook
(bimix); the optimisers call it when present.

* sampled.py: `propose(law, target_step, ...) -> Proposal`, the default (`--optimizer sampled`):
  sampled candidates scored by bootstrap refits, shrunk towards uniform unless most refits of the law
  and of a check law put the step below uniform. Its steps live in proposal.py (`ProposalSettings`, every
  setting with its default; `Proposal`), candidates.py (the support and the candidates), scoring.py
  (bootstrap scoring and intervals), decision.py (refuse / shrink / write) and observed.py (opt-in: the
  best run when its measured loss beats the written mixture's prediction; after a sequential search).
* bootstrap.py: the law's refits on resampled runs and the check law of another family (`second_opinion`).
* slsqp.py: `solve(law, ...) -> Optimum` and `optimize(law, ...) -> weights` (`--optimizer slsqp`): the
  gradient optimum inside laws/support.py's support box and TV trust region; the generic multi-start
  SLSQP box optimum for laws without a closed form.
* bounds.py: the user's floors and caps and the target-step check, shared by both optimisers.
* acquisition.py: `next_batch`, which K mixtures to train next (Thompson over bootstrap refits, CLIMB's
  top-of-pool rule, or qei) with an exploration share; gp_acquisition.py: the BoTorch GP rules (qLogEI, and
  ADMIRE's multi-fidelity GP with a cost-weighted acquisition), the one module here that imports torch
  (inside its functions).

Pure: numpy + scipy (+ the laws' own fits); gp_acquisition.py imports torch/BoTorch when called.
"""
