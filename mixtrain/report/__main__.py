"""`python -m mixtrain.report ...` (see mixtrain/report/cli.py)."""

from mixtrain.report.cli import main

if __name__ == "__main__":
    from mixtrain.errors import run_command

    run_command(main, "mixtrain report")
