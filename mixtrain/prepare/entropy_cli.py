"""`python -m mixtrain.prepare.entropy_cli data_dir=DIR [key=value ...]` (and `mixtrain entropy`).

Place in the flow: after prepare. mixtrain/hydra_app.py composes conf/entropy.yaml, binds it to
`EntropyConfig` (prepare/config.py) and calls `run_entropy()` (prepare/domain_entropy.py): the
four BiMix entropies per domain, cached in DIR/<domain>/stats.json, and the weights they give.
"""

from mixtrain.hydra_app import run_entropy

if __name__ == "__main__":
    run_entropy()
