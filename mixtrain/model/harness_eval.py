"""Benchmark a trained run with lm-evaluation-harness over its Hugging Face export.

    python -m mixtrain.model.harness_eval RUN --tasks T1,T2 [--out FILE] [--limit N] [--num-fewshot K]
                                [--include-path DIR [--no-default-tasks]] [--hf DIR] [--batch-size B]

Place in the flow: RUN/checkpoints (module.py) -> export.py -> RUN/hf (or --hf DIR) ->
**evaluate.py** -> `lm_eval.simple_evaluate(model="hf", ...)` -> RUN/lm_eval.json + a table.

Needs the `eval` extra (`pip install -e '.[eval]'`, lm-eval >= 0.4). The export is redone
from the run's checkpoint every time (so it is the checkpoint's weights, never a stale copy).
BOS is prepended to every request (`add_bos_token=True`): mixtrain trains every document as
[bos] + text + [eos], while lm-eval's default for most HF models is no BOS. `--include-path`
adds task YAMLs of your own (local data: `dataset_path: json` + `dataset_kwargs.data_files`);
`--no-default-tasks` skips indexing lm-eval's built-in tasks (faster when only yours run);
examples/eval_task/ is such a task (YAML + jsonl). A task whose dataset cannot be loaded (a
built-in task offline) is an error naming the task, its dataset and the local alternative.
Per-domain perplexity on your own held-out text during training is not this module: prepare
the text as extra domains and pass `eval_only_domains=[...]` to mixtrain.train.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from mixtrain.store.runfiles import atomic_write


def _require_lm_eval():
    try:
        import lm_eval
    except ImportError:
        raise ImportError("mixtrain.model.harness_eval needs lm-evaluation-harness: pip install -e '.[eval]' "
                          "(or pip install 'lm-eval>=0.4')") from None
    return lm_eval


EXAMPLE_TASK = "python -m mixtrain.model.harness_eval RUN --tasks mixtrain_example --include-path examples/eval_task --no-default-tasks"


def _task_whose_download_failed(error: BaseException):
    """The lm-eval Task whose dataset loading raised `error` (its `download` is on the traceback), or None."""
    tb, task = error.__traceback__, None
    while tb is not None:
        frame = tb.tb_frame
        if frame.f_code.co_name == "download" and "lm_eval" in frame.f_code.co_filename:
            task = frame.f_locals.get("self", task)
        tb = tb.tb_next
    return task


def _dataset_message(task, error: BaseException) -> str:
    config = getattr(task, "config", None)
    name = getattr(config, "task", None) or type(task).__name__
    dataset = getattr(config, "dataset_path", None) or "?"
    if getattr(config, "dataset_name", None):
        dataset += f" ({config.dataset_name})"
    return (f"lm-eval task {name!r} needs its dataset {dataset}, which could not be loaded ({type(error).__name__}: "
            f"{str(error)[:300]}). lm-eval's built-in tasks download their data from the Hugging Face Hub on first "
            "use: run once with network access (the data is then cached in HF_DATASETS_CACHE, offline afterwards), "
            "or evaluate a local task: a YAML with dataset_path: json and dataset_kwargs.data_files pointing at your "
            f".jsonl, as the shipped example: {EXAMPLE_TASK}")


def evaluate_run(run_dir: str | os.PathLike, tasks: list[str], *, out: str | os.PathLike | None = None,
                 hf_dir: str | os.PathLike | None = None, ckpt_path: str | None = None,
                 tokenizer_path: str | None = None, limit: float | None = None, num_fewshot: int | None = None,
                 batch_size: int | str = 1, include_path: str | None = None, include_defaults: bool = True,
                 device: str | None = None, seed: int = 0) -> dict[str, Any]:
    """Export RUN, run lm-eval's `tasks` on it, write the results JSON (RUN/lm_eval.json by default)."""
    lm_eval = _require_lm_eval()
    from lm_eval.tasks import TaskManager
    from lm_eval.utils import handle_non_serializable

    from mixtrain.model.export import export_run

    if not tasks:
        raise ValueError("--tasks is empty: name at least one lm-eval task (lm-eval ls tasks lists them)")
    run_dir = Path(run_dir)
    hf_dir = Path(hf_dir) if hf_dir else run_dir / "hf"
    export_run(run_dir, hf_dir, ckpt_path=ckpt_path, tokenizer_path=tokenizer_path)
    if device is None:
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    manager = TaskManager(include_path=include_path, include_defaults=include_defaults)
    unknown = [t for t in tasks if not manager.match_tasks([t])]
    if unknown:
        where = f" (searched {include_path} and the built-in tasks)" if include_path else ""
        raise ValueError(f"unknown lm-eval task(s) {unknown}{where}; check the name or add --include-path DIR")
    try:
        results = lm_eval.simple_evaluate(
            model="hf", model_args={"pretrained": str(hf_dir), "dtype": "float32" if device == "cpu" else "auto",
                                    "add_bos_token": True},
            tasks=list(tasks), num_fewshot=num_fewshot, batch_size=batch_size, device=device, limit=limit,
            task_manager=manager, log_samples=False, random_seed=seed, numpy_random_seed=seed,
            torch_random_seed=seed, fewshot_random_seed=seed,
        )
    except Exception as e:
        task = _task_whose_download_failed(e)
        if task is None:
            raise
        raise ValueError(_dataset_message(task, e)) from None
    if results is None:  # non-zero ranks under a distributed launcher
        return {}
    out = Path(out) if out else run_dir / "lm_eval.json"
    keep = {k: results[k] for k in ("results", "groups", "versions", "n-shot", "higher_is_better", "n-samples",
                                    "config") if k in results}
    keep["mixtrain"] = {"run": str(run_dir), "hf_dir": str(hf_dir), "tasks": list(tasks), "limit": limit}
    atomic_write(out, json.dumps(keep, indent=2, default=handle_non_serializable) + "\n")
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="mixtrain evaluate", description=__doc__.split("\n\n")[0])
    parser.add_argument("run", help="run directory (out_dir of mixtrain.train)")
    parser.add_argument("--tasks", required=True, help="comma-separated lm-eval task names")
    parser.add_argument("--out", help="results JSON (default RUN/lm_eval.json)")
    parser.add_argument("--hf", help="export folder (default RUN/hf)")
    parser.add_argument("--ckpt", help="a checkpoint instead of RUN/checkpoints/last.ckpt")
    parser.add_argument("--tokenizer", help="tokenizer file instead of the one of RUN's data_dir")
    parser.add_argument("--limit", type=float, help="examples per task (a fraction if < 1)")
    parser.add_argument("--num-fewshot", type=int)
    parser.add_argument("--batch-size", default="1")
    parser.add_argument("--include-path", help="a folder of your own task YAMLs")
    parser.add_argument("--no-default-tasks", action="store_true", help="only the tasks under --include-path")
    parser.add_argument("--device", help="cuda / cpu (default: cuda if available)")
    args = parser.parse_args(argv)
    batch = int(args.batch_size) if args.batch_size.isdigit() else args.batch_size
    limit = None if args.limit is None else (int(args.limit) if args.limit >= 1 else args.limit)
    try:
        results = evaluate_run(
            args.run, [t for t in args.tasks.split(",") if t], out=args.out, hf_dir=args.hf, ckpt_path=args.ckpt,
            tokenizer_path=args.tokenizer, limit=limit, num_fewshot=args.num_fewshot, batch_size=batch,
            include_path=args.include_path, include_defaults=not args.no_default_tasks, device=args.device)
    except (ImportError, FileNotFoundError, FileExistsError, ValueError) as e:
        print(f"[evaluate] error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    if results:
        from lm_eval.utils import make_table

        print(make_table(results), flush=True)
        print(f"[evaluate] {args.out or os.path.join(args.run, 'lm_eval.json')}", flush=True)


if __name__ == "__main__":
    from mixtrain.errors import run_command

    run_command(main, "mixtrain evaluate")
