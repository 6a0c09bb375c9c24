"""`python -m mixtrain.train [group=option ...] [key=value ...]` (and `mixtrain train`, torchrun -m, srun).

Place in the flow: the training stage's entry point. mixtrain/hydra_app.py composes conf/train.yaml,
binds it to `TrainConfig` (train/config.py) and calls `train()` (train/run.py).
"""

from mixtrain.hydra_app import run_train

if __name__ == "__main__":
    run_train()
