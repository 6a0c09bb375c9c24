"""The embedded demo corpus: five domains of text every installation of this project has.

Place in the flow: `data=demo` (prepare.py's source registry) -> **demo_corpus.py** writes
DIR/raw/<domain>/demo.jsonl -> corpus.py reads it like any user folder -> tokenizer.py -> shards.py.

No download, nothing committed. The domains have clearly different statistics:
`code` (standard-library Python source), `cpp` (C/C++ headers shipped with torch and CPython),
`prose` (standard-library docstrings and pydoc topics: English technical prose), `legal`
(licence and copyright texts of the installed packages, deduplicated) and `data`
(JSON/TOML/CFG/CSV data files shipped by packages). Deterministic for a given environment.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import sysconfig
from collections.abc import Iterator
from pathlib import Path

from mixtrain.prepare.corpus import write_if_changed

DEMO_DOMAINS = ("code", "cpp", "prose", "legal", "data")


def stdlib_dir() -> Path:
    """The folder of this interpreter's standard library."""
    return Path(sysconfig.get_paths()["stdlib"])


def package_dirs() -> list[Path]:
    """The site-packages folders of this environment (purelib and platlib, deduplicated, sorted)."""
    paths = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    return sorted(Path(p) for p in paths if Path(p).is_dir())


def _stdlib_py_files() -> list[Path]:
    std = stdlib_dir()
    skip = ("site-packages", "test", "tests", "idlelib", "lib2to3", "__pycache__", "turtledemo")
    return sorted(p for p in std.rglob("*.py") if not any(part in skip for part in p.relative_to(std).parts))


def _take(texts: Iterator[str], max_bytes: int) -> list[str]:
    out, total = [], 0
    for text in texts:
        if not text.strip():
            continue
        size = len(text.encode("utf-8"))
        if total + size > max_bytes and out:
            break
        out.append(text)
        total += size
    return out


def _safe_read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (UnicodeDecodeError, OSError):
        return None  # demo sources only: binary or unreadable files are simply not demo text


def _demo_code() -> Iterator[str]:
    for p in _stdlib_py_files():
        text = _safe_read(p)
        if text:
            yield text


def _demo_cpp() -> Iterator[str]:
    roots = [Path(sysconfig.get_paths()["include"])] + [d / "torch" / "include" for d in package_dirs()]
    for root in roots:
        if root.is_dir():
            for p in sorted(root.rglob("*.h")):
                text = _safe_read(p)
                if text:
                    yield text


def _demo_prose() -> Iterator[str]:
    try:
        from pydoc_data.topics import topics

        for key in sorted(topics):
            yield topics[key]
    except ImportError:
        pass
    for p in _stdlib_py_files():
        text = _safe_read(p)
        if not text:
            continue
        try:
            tree = ast.parse(text)
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node)
                if doc and len(doc) >= 300:
                    yield doc


def _demo_legal() -> Iterator[str]:
    seen: set[str] = set()
    keys = ("LICENSE", "LICENCE", "COPYING", "NOTICE", "COPYRIGHT")
    candidates = sorted(stdlib_dir().glob("LICENSE*"))
    for d in package_dirs():
        candidates += sorted(
            p for p in d.glob("*.dist-info/**/*") if p.is_file() and any(k in p.name.upper() for k in keys)
        )
    for p in candidates:
        text = _safe_read(p)
        if text:
            digest = hashlib.sha1(text.encode()).hexdigest()
            if digest not in seen:  # many packages ship the same MIT/Apache text
                seen.add(digest)
                yield text


def _demo_data() -> Iterator[str]:
    suffixes = {".json", ".toml", ".cfg", ".csv", ".ini"}
    roots = [stdlib_dir()] + package_dirs()
    for root in roots:
        for p in sorted(root.rglob("*")):
            if p.suffix in suffixes and p.is_file() and p.stat().st_size < 200_000 and "site-packages" not in \
                    p.relative_to(root).parts[:1]:
                text = _safe_read(p)
                if text:
                    yield text


DEMO_SOURCES = {"code": _demo_code, "cpp": _demo_cpp, "prose": _demo_prose, "legal": _demo_legal, "data": _demo_data}


def build_demo_corpus(out_root: str | os.PathLike, max_bytes_per_domain: int = 2_000_000,
                      domains=DEMO_DOMAINS, progress: bool = True) -> dict[str, dict[str, int]]:
    """Write RAW/<domain>/demo.jsonl for the demo domains; unchanged content keeps its mtime."""
    from tqdm.auto import tqdm

    unknown = [d for d in domains if d not in DEMO_SOURCES]
    if unknown:
        raise ValueError(f"demo domains {unknown} do not exist; the demo corpus has {list(DEMO_SOURCES)}")
    out_root = Path(out_root)
    sizes = {}
    for domain in tqdm(list(domains), desc="demo corpus", disable=not progress):
        docs = _take(DEMO_SOURCES[domain](), max_bytes_per_domain)
        if not docs:
            raise RuntimeError(f"demo domain {domain!r}: this Python installation has no such text")
        text = "".join(json.dumps({"text": d}, ensure_ascii=False) + "\n" for d in docs)
        write_if_changed(out_root / domain / "demo.jsonl", text)
        sizes[domain] = {"num_docs": len(docs), "num_bytes": sum(len(d.encode()) for d in docs)}
    return sizes
