"""launch/proxy_sweep.sh sweeps model sizes as well as mixtures (MODELS="tiny small"): the composed
multirun has one job per (size, mixture), each a valid config of a different model size. Cheap: DRY_RUN=1
prints the commands, nothing is trained."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser

REPO = Path(__file__).resolve().parents[2]


def _dry_run(data_dir, out, **env):
    proc = subprocess.run(["bash", "launch/proxy_sweep.sh", str(data_dir), str(out), "3", "trainer.max_steps=12"],
                          cwd=REPO, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHON": sys.executable, "PYTHONPATH": str(REPO), "DRY_RUN": "1", **env})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return [shlex.split(line) for line in proc.stdout.splitlines() if " -m mixtrain." in line]


def test_sweep_composes_runs_for_several_model_sizes(tiny_data_dir, tmp_path):
    from mixtrain.model.gpt import GPT, GPTConfig

    cmds = _dry_run(tiny_data_dir, tmp_path / "p", MODELS="tiny small", TARGET_PARAMS="1e9", TARGET_TOKENS="1e11")
    train = next(c for c in cmds if c[2] == "mixtrain.train")
    overrides = train[train.index("-m", 3) + 1:]
    parsed = OverridesParser.create().parse_overrides(overrides)
    sweeps = {o.key_or_group: list(o.sweep_string_iterator()) for o in parsed if o.is_sweep_override()}
    assert sweeps["model"] == ["tiny", "small"] and len(sweeps["mixing.weights_file"]) == 3  # 2 x 3 jobs
    sizes = {}
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        for model in sweeps["model"]:
            job = [o.input_line for o in parsed if not o.is_sweep_override()]
            cfg = compose("train", overrides=[*job, f"model={model}", f"mixing.weights_file={sweeps['mixing.weights_file'][0]}"])
            kw = {k: v for k, v in cfg.model.items() if k != "_target_"}
            import torch

            with torch.device("meta"):
                sizes[model] = GPT(GPTConfig(**{**kw, "vocab_size": 512, "seq_len": cfg.seq_len})).num_params()
    assert sizes["small"] > 2 * sizes["tiny"]
    optimise = next(c for c in cmds if c[2] == "mixtrain.fitting.fit" and "--optimize" in c)
    assert optimise[optimise.index("--params") + 1] == "1e9" and optimise[optimise.index("--tokens") + 1] == "1e11"
    assert optimise[optimise.index("--data-dir") + 1] == str(tiny_data_dir)  # repetition at the target budget


def test_sweep_without_models_keeps_the_proxy_default(tiny_data_dir, tmp_path):
    train = next(c for c in _dry_run(tiny_data_dir, tmp_path / "p", TARGET_STEP="100") if c[2] == "mixtrain.train")
    assert not any(a.startswith("model=") for a in train)
