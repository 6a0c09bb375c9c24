"""The litdata releases mixtrain is tested with, and the check that the installed one is among them.

Place in the flow: mixtrain/prepare/shards.py (litdata `optimize`) and mixtrain/sampler/
(`read_domain_blocks`, which mixtrain/train/datamodule.py's train and val loaders go through
before they open a litdata `StreamingDataset` + `TokensLoader`) call `require_litdata()` before
they touch litdata. The sampler relies on litdata internals, not only its public API: it reads
the chunk list of `index.json` and the TokensLoader chunk files' byte layout directly
(mixtrain/sampler/readers.py; other chunk formats through a dataset's `cache` with
`litdata.streaming.sampler.ChunkedIndex`), and mixtrain/prepare/domain_entropy.py reads the chunk
files' byte layout too. So the range is where those were tested, and pyproject.toml pins exactly
`LITDATA_REQUIREMENT` (tests/store/test_litdata_range.py keeps the two equal).

Why these ends (found by installing releases into a scratch environment and running the
litdata-dependent tests; CI re-runs them on the lowest release, .ci/litdata_range.sh):
* < 0.2.51: `optimize` has no `verbose` argument, which mixtrain/prepare/shards.py passes (TypeError).
* < 0.2.68: `TokensLoader` returns views into a chunk's memory map and unmaps the chunk when
  reading moves on to another one: the sampler's reads kill the process (SIGSEGV, no Python error).
* < 0.2.69: `optimize` stages chunks in one folder shared by every process ($TMPDIR/chunks) under
  fixed names: two prepares at once on one machine (e.g. two SLURM jobs on a node, different
  data_dirs) take each other's chunks and one data_dir ends up with chunks missing, while both
  exit 0 (tests/store/test_litdata_range.py runs three at once). 0.2.70 still shares the list of
  inputs (`node-0-items.pkl`: a data_dir got another prepare's documents, 6 of 11 tries);
  mixtrain/prepare/shards.py therefore gives every optimize private cache folders, which makes
  concurrent prepares safe on every release in the range without relying on litdata's own fix
  (0.2.76).
* < 0.2.70: every `StreamingDataset` and `optimize` asks PyPI for a newer litdata, a network
  request at run time (up to 30 s on a firewalled node) unless LITDATA_DISABLE_VERSION_CHECK=1.
* upper end: 0.2.76 is the newest release tested (what a fresh `bash install.sh` resolves, so
  every CI run tests the newest 0.2.x); 0.3 is the next minor, and litdata's 0.x versions may
  change the internals above there. A newer release only warns (it may work; it is untested).
"""

from __future__ import annotations

import functools
import re
import warnings

LITDATA_MIN = "0.2.70"  # oldest release tested and known to work (see the module docstring)
LITDATA_BELOW = "0.3"  # first release not covered: the next minor after the newest tested (0.2.76)
LITDATA_REQUIREMENT = f"litdata>={LITDATA_MIN},<{LITDATA_BELOW}"


def _release(version: str) -> tuple[int, int, int]:
    """The numeric release of a version string, padded to three parts: '0.2.76.post1' -> (0, 2, 76)."""
    m = re.match(r"\d+(?:\.\d+)*", version.strip())
    if m is None:
        raise ValueError(f"litdata version {version!r} is not a release number like 0.2.76")
    parts = [int(p) for p in m.group(0).split(".")][:3]
    return tuple(parts + [0] * (3 - len(parts)))  # type: ignore[return-value]


def check_litdata_version(version: str) -> None:
    """Raise if `version` is older than the tested range (known breakages); warn if it is newer."""
    fix = f'pip install "{LITDATA_REQUIREMENT}" -c .venv/torch-constraint.txt (or re-run `bash install.sh`)'
    if _release(version) < _release(LITDATA_MIN):
        raise RuntimeError(
            f"litdata {version} is installed, but mixtrain needs {LITDATA_REQUIREMENT} (older releases crash "
            f"the sampler or mix up concurrent prepares; mixtrain/store/litdata_range.py says which). Fix: {fix}")
    if _release(version) >= _release(LITDATA_BELOW):
        warnings.warn(
            f"litdata {version} is newer than the releases mixtrain was tested with ({LITDATA_REQUIREMENT}); "
            f"the sampler uses litdata internals that may have changed. If reading shards fails: {fix}",
            RuntimeWarning, stacklevel=3)


@functools.cache
def require_litdata() -> None:
    """Check the installed litdata once per process (see `check_litdata_version`)."""
    try:
        import litdata
    except ImportError as e:
        raise ImportError(f"litdata is not installed ({e}); mixtrain needs {LITDATA_REQUIREMENT}: "
                          "run `bash install.sh`") from None
    check_litdata_version(str(getattr(litdata, "__version__", "0")))
