"""`python -m mixtrain.prepare data=<demo|dir|hf> data_dir=DIR [key=value ...]` (and `mixtrain prepare`).

Place in the flow: the first stage's entry point. mixtrain/hydra_app.py composes conf/prepare.yaml,
binds it to `PrepareConfig` (prepare/config.py) and calls `prepare()` (prepare/pipeline.py).
"""

from mixtrain.hydra_app import run_prepare

if __name__ == "__main__":
    run_prepare()
