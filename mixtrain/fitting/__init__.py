"""Fitting a mixture from proxy runs: proxy mixtures -> short runs -> observation table -> law -> weights.yaml.

Place in the flow: between a prepared DIR and the final run. proxy.py writes the sweep's mixtures,
`mixtrain train -m` trains them, collect.py reads their metrics.csv into table.csv (laws/table.py),
fit.py fits a law (mixtrain/laws/) and optimises it (laws/optim/) into weights.yaml, which a run
uses with `mixing=manual mixing.weights_file=weights.yaml` (or law.json with `mixing=law`).

    proxy.py       `mixtrain proxy`: uniform, natural, entropy and Dirichlet mixtures of a sweep
    collect.py     `mixtrain collect`: run directories -> table.csv (tokens, num_params, losses)
    fit.py         `mixtrain fit`: fit / report / predict / optimise
    fit_target.py  the target run of `fit --optimize`: step, tokens, model size, repetition
    search.py      `mixtrain proxy --next K`: the next proxy mixtures from the runs so far (sequential search)
    search_rounds.py  the predicted best and its interval after each round of launch/proxy_rounds.sh
    search_loop.py  the round loop with a sized pool: round 0, a sweep per model preset, the recommendation
"""
