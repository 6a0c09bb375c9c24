"""The `mixtrain` command: one entry point for every stage (the Docker image's ENTRYPOINT).

    mixtrain train data_dir=DIR out_dir=RUN ...          = python -m mixtrain.train ...
    mixtrain prepare | fit | fit-meta | collect | export | generate | evaluate | report | proxy | entropy | embed | cluster | influence ARGS
    mixtrain data_dir=DIR out_dir=RUN ...                 (Hydra overrides first: train)

Place in the flow: in front of the entry points; it only picks the module and hands it the
rest of the command line. The module is started as `python -m mixtrain.<command>` by exec
(the process is replaced, not wrapped), so everything behaves exactly as the documented
`python -m` form: Hydra's config path and sweeps, Lightning's launcher re-running the command
for its other ranks, signals (SIGTERM from `docker stop` or SLURM) reaching the training
process, and the exit status.

`MIXTRAIN_UMASK` (octal, e.g. 0002; the Docker image sets it) is applied first, so the files
every stage writes into mounted volumes are readable (and writable) by the volume's group.
"""

from __future__ import annotations

import os
import sys

COMMANDS = {
    "train": ("mixtrain.train", "pretrain on a mixture of domains (Hydra: key=value overrides)"),
    "prepare": ("mixtrain.prepare", "tokenizer + shards + stats for a data_dir (Hydra overrides)"),
    "proxy": ("mixtrain.fitting.proxy", "the mixtures of a proxy sweep"),
    "collect": ("mixtrain.fitting.collect", "a sweep's run directories -> the observation table"),
    "fit": ("mixtrain.fitting.fit", "fit mixing laws to the table, optimise the mixture"),
    "fit-meta": ("mixtrain.fitting.meta_fit", "Domain2Vec law feature: fit on meta-domain mixtures, score other domains"),
    "influence": ("mixtrain.train.influence", "AutoMixer: domain influence at a run's checkpoints -> weights.yaml"),
    "entropy": ("mixtrain.prepare.entropy_cli", "per-domain entropies of a prepared data_dir (Hydra overrides)"),
    "export": ("mixtrain.model.export", "a run -> a Hugging Face Llama folder"),
    "generate": ("mixtrain.model.generate", "sample text from a run or an exported folder"),
    "evaluate": ("mixtrain.model.harness_eval", "lm-evaluation-harness over a run's export"),
    "report": ("mixtrain.report", "tables and plots from run directories"),
    "embed": ("mixtrain.embed.cli", "one vector per document of a raw corpus (hashing | hf embedder)"),
    "cluster": ("mixtrain.cluster.cli", "domains from unlabelled text: k-means, prune, Ward merge -> OUT/<cluster>/"),
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [f"  {name:<{width}}  {help_text}" for name, (_, help_text) in COMMANDS.items()]
    return ("usage: mixtrain COMMAND [ARGS...]   (mixtrain COMMAND --help for its options)\n\ncommands:\n"
            + "\n".join(lines) + "\n\nmixtrain key=value ... (Hydra overrides first) runs train.")


def command_line(argv: list[str]) -> list[str]:
    """The `python -m mixtrain.<module> ...` command that `mixtrain argv...` runs."""
    if argv and argv[0] in COMMANDS:
        return [sys.executable, "-m", COMMANDS[argv[0]][0], *argv[1:]]
    if argv and ("=" in argv[0] or argv[0] in ("-m", "--multirun")):  # Hydra overrides: the default command
        return [sys.executable, "-m", COMMANDS["train"][0], *argv]
    given = f"unknown command {argv[0]!r}; " if argv else ""
    raise ValueError(f"{given}{usage()}")


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        raise SystemExit(0 if argv else 2)
    try:
        command = command_line(argv)
    except ValueError as e:
        print(f"mixtrain: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    umask = os.environ.get("MIXTRAIN_UMASK")
    if umask:
        try:
            os.umask(int(umask, 8))
        except ValueError:
            print(f"mixtrain: MIXTRAIN_UMASK={umask!r} is not an octal umask such as 0002 or 0022", file=sys.stderr)
            raise SystemExit(2) from None
    sys.stdout.flush()
    os.execv(command[0], command)


if __name__ == "__main__":
    main()
