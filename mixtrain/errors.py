"""User-facing errors: one small hierarchy, so every entry point can print a user's mistake as one line.

Place in the flow: below every stage (any module may raise these; this module imports nothing).
An entry point catches `MixtrainError` and prints its message (what was wrong, which key, file or
domain, and the fix) without a traceback; any other exception is a bug and keeps its traceback.
Subclassing ValueError keeps older `except ValueError` callers and tests working.
"""

from __future__ import annotations


class MixtrainError(ValueError):
    """A user mistake or a refused action; the message names the key/file/domain and the fix."""


class ConfigError(MixtrainError):
    """A config key or value the command does not accept."""


class DataError(MixtrainError):
    """Prepared or raw data that is missing, damaged, or not the data a run was started on."""


class RunDirError(MixtrainError):
    """A run directory that cannot be used: held by another writer, unwritable, or inconsistent."""


class MissingPathError(DataError, FileNotFoundError):
    """A file or folder the user named that is not there (still a FileNotFoundError for older callers)."""


# ------------------------------------------------------------------------------------- the one error path
DEBUG_ENV = ("MIXTRAIN_DEBUG", "HYDRA_FULL_ERROR")  # either set to 1: user errors keep their traceback too
USER_ERROR_EXIT = 2
_PATH_FIXES = {  # an OS refusal on a path the user gave: the fix to print
    "PermissionError": "is not writable by you: choose another {key} or fix the folder's permissions",
    "FileExistsError": "is in the way (an existing file where a folder is needed): choose another {key} or move it",
    "NotADirectoryError": "runs through a file where a folder is needed: choose another {key}",
    "IsADirectoryError": "is a folder where a file is needed: check {key}",
    "FileNotFoundError": "does not exist: check {key}",
}


def debug_requested() -> bool:
    import os

    return any(os.environ.get(name, "") not in ("", "0") for name in DEBUG_ENV)


def _inside(path: str, root: str) -> bool:
    import os

    path, root = os.path.abspath(path), os.path.abspath(root)
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def as_user_error(exc: BaseException, paths: dict[str, str] | None = None) -> MixtrainError | None:
    """`exc` as a user error, or None for a bug (which keeps its traceback).

    * a MixtrainError is one;
    * an OSError that mixtrain raised itself with a message (no errno: `raise FileNotFoundError("...fix")`)
      is one: such messages name the file and the fix;
    * an OSError from the operating system on a path inside one of `paths` ({config key: path the user
      gave}, e.g. {"out_dir": "runs/x"}) becomes a RunDirError naming the key and the fix.
    """
    if isinstance(exc, MixtrainError):
        return exc
    if not isinstance(exc, OSError):
        return None
    if exc.errno is None:
        return DataError(str(exc))
    name = type(exc).__name__
    filename = exc.filename if isinstance(exc.filename, str) else None
    for key, root in (paths or {}).items():
        if root and filename and name in _PATH_FIXES and (_inside(filename, root) or _inside(root, filename)):
            return RunDirError(f"{key}={root}: {filename} {_PATH_FIXES[name].format(key=key)} ({exc.strerror})")
    return None


def print_user_error(prog: str, err: BaseException) -> None:
    """One line on stderr: `mixtrain X: error: <what, which key or file, the fix>`."""
    import sys

    text = " ".join(str(err).split("\n")).strip()
    sys.stdout.flush()
    print(f"{prog}: error: {text}", file=sys.stderr, flush=True)


class user_errors:  # noqa: N801  (used as `with user_errors("mixtrain fit"):`, like a function)
    """Context of an entry point: a user error (see `as_user_error`) is printed as one line and the process
    exits with status 2; a bug propagates with its traceback. With MIXTRAIN_DEBUG=1 (or HYDRA_FULL_ERROR=1)
    user errors propagate too. `sys.exit("message")` (argparse mains' own refusals) exits 2 as well."""

    def __init__(self, prog: str, paths: dict[str, str] | None = None, on_error=None):
        self.prog, self.paths, self.on_error = prog, paths, on_error

    def __enter__(self) -> "user_errors":
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc is None:
            return False
        if isinstance(exc, SystemExit) and isinstance(exc.code, str):  # sys.exit("collect: ...")
            exc = MixtrainError(exc.code.partition(": ")[2] if exc.code.startswith(self.prog.split()[-1] + ": ")
                                else exc.code)
        err = as_user_error(exc, self.paths)
        if self.on_error is not None and not isinstance(exc, SystemExit):
            self.on_error(exc)  # e.g. remove the run directory this refused start created
        if err is None or debug_requested():
            return False
        print_user_error(self.prog, err)
        raise SystemExit(USER_ERROR_EXIT) from None


def run_command(main, prog: str) -> None:
    """`main()` of an argparse entry point inside `user_errors(prog)` (its `if __name__ == "__main__":`)."""
    with user_errors(prog):
        main()
