"""Tests for mixtrain.store.litdata_range: the pinned litdata range, the version check, and the litdata
behaviour the range's lower end was chosen for (each test here fails on a release below it).

CI runs this file, with the sampler/shards/entropy/train tests, on the lowest release of the
range too (.ci/litdata_range.sh); the main suite runs on the newest release pip resolves.
"""

from __future__ import annotations

import multiprocessing as mp
import re
import socket
import warnings
from pathlib import Path

import pytest

from mixtrain.store.litdata_range import LITDATA_BELOW, LITDATA_MIN, LITDATA_REQUIREMENT, check_litdata_version, require_litdata

ROOT = Path(__file__).resolve().parents[2]


def test_pyproject_pins_exactly_the_range_that_is_checked():
    text = (ROOT / "pyproject.toml").read_text()
    deps = re.search(r"^dependencies = \[(.*?)^\]", text, flags=re.S | re.M).group(1)
    pins = re.findall(r'"(litdata[^"]*)"', deps)
    assert pins == [LITDATA_REQUIREMENT], f"pyproject.toml has {pins}; mixtrain/store/litdata_range.py checks {LITDATA_REQUIREMENT}"


def test_versions_below_the_range_are_refused_with_the_range_and_the_fix():
    with pytest.raises(RuntimeError, match=r"litdata 0\.2\.67 is installed, but mixtrain needs litdata>=0\.2\.70,<0\.3.*pip install"):
        check_litdata_version("0.2.67")
    with pytest.raises(RuntimeError, match="litdata 0.1.9 "):
        check_litdata_version("0.1.9")
    with pytest.raises(ValueError, match="not a release number"):
        check_litdata_version("unknown")


def test_versions_in_the_range_pass_and_newer_ones_only_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for v in (LITDATA_MIN, "0.2.76", "0.2.76.post1", "0.2.99"):
            check_litdata_version(v)
    with pytest.warns(RuntimeWarning, match=r"litdata 0\.3\.0rc1 is newer than the releases mixtrain was tested with"):
        check_litdata_version("0.3.0rc1")
    with pytest.warns(RuntimeWarning, match="litdata 1.0 is newer"):
        check_litdata_version("1.0")
    assert LITDATA_BELOW == "0.3"


def test_installed_litdata_is_inside_the_range():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # newer than the range: the warning fails this test
        require_litdata.__wrapped__()


# ---- the litdata behaviour behind the lower end ------------------------------------------------

BLOCK = 50


def _write(domain_id: int, out_dir: str) -> None:
    """One domain's shards, written by prepare's own writer (shards._optimize: TokensLoader, fork, overwrite)."""
    import numpy as np

    from mixtrain.prepare.shards import ShardSettings, _optimize

    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    token_file = out.parent / f"{out.name}.tokens"
    np.arange(domain_id * 1_000_000, domain_id * 1_000_000 + 400 * BLOCK, dtype=np.int32).tofile(token_file)
    starts = np.arange(0, 400 * BLOCK, BLOCK)
    _optimize(str(token_file), starts, starts + BLOCK, out, ShardSettings(block_size=BLOCK, blocks_per_chunk=4))


def _domains_read_back(out_dir: str) -> set[int]:
    from litdata import StreamingDataset, TokensLoader

    ds = StreamingDataset(out_dir, item_loader=TokensLoader(block_size=BLOCK), shuffle=False)
    assert len(ds) == 400, f"{out_dir}: {len(ds)} blocks, wrote 400"
    return {int(ds[i][0]) // 1_000_000 for i in range(len(ds))}


def test_two_prepares_at_once_on_one_machine_keep_their_own_chunks(tmp_path):
    # litdata stages bookkeeping in $TMPDIR under fixed names: below 0.2.69 the chunks themselves
    # (a data_dir was left with chunks missing), in 0.2.70 still the list of inputs (a data_dir got
    # the other prepare's documents, both exiting 0). prepare's writer gives each optimize private
    # cache folders (shards._private_litdata_cache), so this holds on every release in the range.
    ctx = mp.get_context("fork")
    writers = 3
    jobs = [ctx.Process(target=_write, args=(k, str(tmp_path / f"d{k}"))) for k in range(writers)]
    for p in jobs:
        p.start()
    for p in jobs:
        p.join(timeout=60)  # each takes well under a second; old releases can wait forever for a lost chunk
    hung = [p for p in jobs if p.is_alive()]
    for p in hung:
        p.kill()
        p.join()
    assert not hung, f"writers hung: {[p.exitcode for p in jobs]}"
    assert [p.exitcode for p in jobs] == [0] * writers
    for k in range(writers):
        assert _domains_read_back(str(tmp_path / f"d{k}")) == {k}


def test_writing_and_reading_shards_makes_no_network_request(tmp_path, monkeypatch):
    # litdata < 0.2.70 asked PyPI for a newer release on every optimize and StreamingDataset.
    import litdata.helpers

    newer = getattr(litdata.helpers, "_get_newer_version", None)
    if hasattr(newer, "cache_clear"):
        newer.cache_clear()  # an earlier test's answer would hide the request
    asked: list[object] = []

    def refuse(*args, **kwargs):
        asked.append(args[:2])
        raise OSError("network access in a test")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    _write(3, str(tmp_path / "d"))
    assert _domains_read_back(str(tmp_path / "d")) == {3}
    assert asked == [], f"litdata made network requests: {asked}"
