"""The model and what moves it in and out: the GPT, the Hugging Face Llama mapping, initial weights,
export, sampling and lm-evaluation-harness runs.

Place in the flow: train/module.py builds gpt.GPT from the `model` section; a run's checkpoints
(store/checkpoint_files.py) -> export.py -> an HF folder -> harness_eval.py / generate.py, and
init_weights.py brings an HF folder or a run back in as a new run's starting weights.

    config.py        GPTConfig: the `model` section, a plain dataclass (no torch: configs compose fast)
    gpt.py           GPT: RMSNorm, RoPE, SwiGLU, SDPA attention
    hf_format.py     GPT <-> LlamaForCausalLM state dict and config (pure mapping)
    init_weights.py  `init_from=`: weights of an HF folder or a mixtrain run, checked against the model
    export.py        `python -m mixtrain.model.export RUN --out HF_DIR` (`mixtrain export`)
    generate.py      `python -m mixtrain.model.generate` (`mixtrain generate`)
    harness_eval.py  `python -m mixtrain.model.harness_eval` (`mixtrain evaluate`): lm-eval over the export
"""
