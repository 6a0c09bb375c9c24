"""The package, configs, scripts and tests cite only what a user of the repository has.

Docstrings and comments that point at notes outside the repository (a design folder next to the
checkout, an absolute path on one machine) send readers to files they do not have: cite the
paper, docs/ or the README instead.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCANNED = ("mixtrain", "conf", "launch", "bench", "tests", ".ci", "docs")
SUFFIXES = {".py", ".yaml", ".yml", ".sh", ".md", ".toml", ".txt", ""}
# what an outside reference looks like: the sibling notes folder, its files, an absolute checkout path
OUTSIDE = ("../shared", "shared/design", "methods.md", "peers.md", "layout.md", "/work/")


def _files():
    for top in SCANNED:
        for path in sorted((ROOT / top).rglob("*")):
            if path.is_file() and path.suffix in SUFFIXES and "__pycache__" not in path.parts:
                yield path
    yield from (ROOT / name for name in ("install.sh", "Dockerfile", "pyproject.toml") if (ROOT / name).exists())


def test_no_reference_to_files_outside_the_repository():
    me = Path(__file__).resolve()
    hits = []
    for path in _files():
        if path.resolve() == me:
            continue
        for lineno, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            hits += [f"{path.relative_to(ROOT)}:{lineno}: {token!r}" for token in OUTSIDE if token in line]
    assert not hits, "references to files outside the repository:\n" + "\n".join(hits)


def test_tests_have_one_conftest_at_their_root():
    """Test modules import shared helpers with `from conftest import ...`; a conftest.py in a subfolder of tests/
    shadows that module for every file beside it (pytest puts each test folder first on sys.path), so fixtures
    belong in tests/conftest.py only (a tests/laws/conftest.py once broke 14 files' imports)."""
    tests = Path(__file__).resolve().parent
    nested = sorted(str(p.relative_to(tests)) for p in tests.rglob("conftest.py") if p.parent != tests)
    assert not nested, f"move these fixtures into tests/conftest.py: {nested}"
