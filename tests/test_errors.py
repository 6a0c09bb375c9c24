"""mixtrain/errors.py: the one error path of every entry point. A user mistake (a MixtrainError, an
OSError mixtrain raised with its own message, an OS refusal on a path the user gave) is one line on
stderr and exit status 2; a bug keeps its traceback; MIXTRAIN_DEBUG=1 / HYDRA_FULL_ERROR=1 show it."""

from __future__ import annotations

import errno
import os

import pytest

from mixtrain.errors import (ConfigError, DataError, MissingPathError, MixtrainError, RunDirError, as_user_error,
                             user_errors)


def test_what_counts_as_a_user_error(tmp_path):
    assert isinstance(as_user_error(ConfigError("mixing.measure='cee'")), ConfigError)
    assert isinstance(MissingPathError("x"), FileNotFoundError) and isinstance(MissingPathError("x"), ValueError)
    ours = as_user_error(FileExistsError("resume=true but out_dir holds no checkpoint; ..."))  # no errno: a message
    assert isinstance(ours, DataError) and "resume=true" in str(ours)
    out = tmp_path / "runs" / "x"
    denied = PermissionError(errno.EACCES, "Permission denied", str(out / "config.yaml"))
    err = as_user_error(denied, {"out_dir": str(out), "data_dir": str(tmp_path / "data")})
    assert isinstance(err, RunDirError) and str(err).startswith(f"out_dir={out}: ") and "permissions" in str(err)
    in_the_way = FileExistsError(errno.EEXIST, "File exists", str(tmp_path / "data"))
    assert "is in the way" in str(as_user_error(in_the_way, {"data_dir": str(tmp_path / "data" / "sub")}))
    assert as_user_error(denied, {"out_dir": str(tmp_path / "elsewhere")}) is None  # not the user's path: a bug
    assert as_user_error(RuntimeError("boom")) is None and as_user_error(KeyError("k")) is None


def test_user_errors_prints_one_line_and_exits_2(capsys, monkeypatch):
    for name in ("MIXTRAIN_DEBUG", "HYDRA_FULL_ERROR"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(SystemExit) as stop:
        with user_errors("mixtrain fit"):
            raise ConfigError("--law-file law.json does not exist;\nrun mixtrain fit --table T.csv first")
    err = capsys.readouterr().err
    assert stop.value.code == 2 and err == ("mixtrain fit: error: --law-file law.json does not exist; "
                                            "run mixtrain fit --table T.csv first\n")
    with pytest.raises(SystemExit) as stop:  # an argparse main's own `sys.exit("collect: ...")`
        with user_errors("mixtrain collect"):
            raise SystemExit("collect: runs/x: not a directory")
    assert stop.value.code == 2 and capsys.readouterr().err == "mixtrain collect: error: runs/x: not a directory\n"
    with pytest.raises(ZeroDivisionError):  # a bug keeps its traceback
        with user_errors("mixtrain fit"):
            1 / 0
    monkeypatch.setenv("MIXTRAIN_DEBUG", "1")
    with pytest.raises(ConfigError):  # debugging: the user error propagates with its traceback too
        with user_errors("mixtrain fit"):
            raise ConfigError("x")
    monkeypatch.setenv("MIXTRAIN_DEBUG", "0")
    with pytest.raises(SystemExit):
        with user_errors("mixtrain fit"):
            raise MixtrainError("x")


def test_on_error_runs_for_refusals_and_bugs_not_for_success(tmp_path):
    seen = []
    with pytest.raises(SystemExit):
        with user_errors("mixtrain train", on_error=seen.append):
            raise DataError("data_dir=x holds no prepared data")
    with pytest.raises(OSError):
        with user_errors("mixtrain train", on_error=seen.append):
            raise OSError(errno.EIO, "I/O error", os.fspath(tmp_path))
    with user_errors("mixtrain train", on_error=seen.append):
        pass
    assert [type(e) for e in seen] == [DataError, OSError]
