"""Raw text per domain: readers for user folders, a Hugging Face splitter, and the demo corpus.

Place in the flow: the first stage. **corpus.py** -> tokenizer.py -> shards.py (driven by prepare.py).

Every source ends up as a RAW folder with one sub-folder per domain (the folder name is the
domain name), which `iter_documents` reads:

* `.txt`      - `txt_mode` (data.txt_mode, see TXT_MODES): `file` (default) the whole file is
                one document; `lines` every non-empty line is one document; `blocks` documents
                are separated by one or more blank lines. `lines` and `blocks` stream the file,
                so one large file is fine. Text with NUL bytes (binary data) is refused.
* `.jsonl`, `.jsonl.gz`, `.jsonl.zst` - one JSON object per line; the text is `text_field`
                (default "text"; a dotted path such as "meta.body" reaches nested fields).
* `.parquet`  - the `text_field` column.
Files are read in sorted path order. Text must be UTF-8. Documents that are empty or only
whitespace carry no tokens and are counted (`num_empty_docs`, printed by prepare), not trained
on; an empty `.txt` file counts as one empty document in every txt_mode. Anything else
that cannot be read - an unsupported file type, undecodable bytes, a line without the text
field, a corrupt archive - raises an error naming the file (and line) and the fix.

`data=hf` streams a Hugging Face dataset whose records carry a domain field (SlimPajama's
`meta.redpajama_set_name`, The Pile's `meta.pile_set_name`) and writes one `hf.jsonl` per
domain into RAW; domain names are lower-cased with every run of characters outside
[a-z0-9] replaced by "_" (e.g. "RedPajamaGithub" -> "redpajamagithub", "Pile-CC" -> "pile_cc").

`build_demo_corpus` writes the embedded demo corpus (no download, nothing committed): text
that every installation of this project has, in five domains with clearly different
statistics - `code` (standard-library Python source), `cpp` (C/C++ headers shipped with torch
and CPython), `prose` (standard-library docstrings and pydoc topics: English technical prose),
`legal` (licence and copyright texts of the installed packages, deduplicated) and `data`
(JSON/TOML/CFG/CSV data files shipped by packages). Deterministic for a given environment.
"""

from __future__ import annotations

import ast
import gzip
import hashlib
import io
import json
import os
import re
import sysconfig
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

SUPPORTED_SUFFIXES = (".txt", ".jsonl", ".jsonl.gz", ".jsonl.zst", ".parquet")
TXT_MODES = {"file": "one document per .txt file", "lines": "one document per non-empty line",
             "blocks": "documents separated by blank lines"}
TXT_MODES_HINT = "data.txt_mode=" + " | ".join(f"{k} ({v})" for k, v in TXT_MODES.items())


def check_txt_mode(txt_mode: str) -> None:
    if txt_mode not in TXT_MODES:
        raise ValueError(f"data.txt_mode={txt_mode!r} is not an option; use {TXT_MODES_HINT}")
DEMO_DOMAINS = ("code", "cpp", "prose", "legal", "data")


def _suffix(path: Path) -> str | None:
    name = path.name.lower()
    for suffix in sorted(SUPPORTED_SUFFIXES, key=len, reverse=True):
        if name.endswith(suffix):
            return suffix
    return None


def list_domains(root: str | os.PathLike) -> list[str]:
    """The domain sub-folders of RAW, sorted; errors if RAW is missing or has none."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"raw corpus folder {root} does not exist; create RAW/<domain>/ folders with text files")
    domains = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not domains:
        raise ValueError(f"{root} holds no domain sub-folders; put each domain's files in {root}/<domain>/")
    return domains


def domain_files(root: str | os.PathLike, domain: str) -> list[Path]:
    """Every supported file of RAW/<domain> (recursive, sorted); errors on anything unsupported."""
    folder = Path(root) / domain
    if not folder.is_dir():
        raise FileNotFoundError(f"domain {domain!r}: folder {folder} does not exist")
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
    unsupported = [p for p in files if _suffix(p) is None]
    if unsupported:
        raise ValueError(
            f"domain {domain!r}: unsupported file {unsupported[0]} ({len(unsupported)} such file(s)); "
            f"supported: {', '.join(SUPPORTED_SUFFIXES)} - convert it or move it out of {folder}"
        )
    if not files:
        raise ValueError(f"domain {domain!r}: folder {folder} is empty; add {'/'.join(SUPPORTED_SUFFIXES)} files")
    return files


def _field(record: Any, dotted: str) -> Any:
    value = record
    for part in dotted.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def _read_text(path: Path) -> str:
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(
            f"{path}: not valid UTF-8 at byte {e.start} ({data[e.start:e.start + 4]!r}); "
            "convert the file to UTF-8 (e.g. `iconv -f latin1 -t utf-8`)"
        ) from None


def _refuse_nul(text: str, where: str) -> None:
    if "\x00" in text:
        raise ValueError(f"{where}: contains NUL bytes, i.e. binary data, not text; "
                         "remove the file from the domain folder or convert it to plain UTF-8 text")


def _txt_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, line without its newline), decoded and checked line by line (no whole-file read)."""
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise ValueError(
                    f"{path}:{number}: not valid UTF-8 at byte {e.start} of the line ({raw[e.start:e.start + 4]!r}); "
                    "convert the file to UTF-8 (e.g. `iconv -f latin1 -t utf-8`)"
                ) from None
            _refuse_nul(line, f"{path}:{number}")
            yield number, line.rstrip("\r\n")


def _txt_documents(path: Path, txt_mode: str) -> Iterator[str]:
    if txt_mode not in TXT_MODES:
        raise ValueError(f"{path}: data.txt_mode={txt_mode!r} is not an option; use {TXT_MODES_HINT}")
    if txt_mode == "file":
        text = _read_text(path)
        _refuse_nul(text, f"{path} (at character {text.find(chr(0))})")
        yield text
        return
    produced = False
    block: list[str] = []
    for _, line in _txt_lines(path):
        if txt_mode == "lines":
            if line.strip():
                produced = True
                yield line
        elif line.strip():
            block.append(line)
        elif block:
            produced = True
            yield "\n".join(block)
            block = []
    if block:
        produced = True
        yield "\n".join(block)
    if not produced:
        yield ""  # an empty file is counted as an empty document, never silently dropped


def _jsonl_lines(path: Path, suffix: str) -> Iterator[tuple[int, str]]:
    try:
        if suffix == ".jsonl.gz":
            raw: io.BufferedIOBase = gzip.open(path, "rb")
        elif suffix == ".jsonl.zst":
            import zstandard

            raw = zstandard.ZstdDecompressor().stream_reader(open(path, "rb"), closefd=True)
        else:
            raw = open(path, "rb")
        with raw:
            for number, line in enumerate(io.BufferedReader(raw) if suffix == ".jsonl.zst" else raw, start=1):
                try:
                    yield number, line.decode("utf-8")
                except UnicodeDecodeError as e:
                    raise ValueError(
                        f"{path}:{number}: not valid UTF-8 at byte {e.start} of the line; convert the file to UTF-8"
                    ) from None
    except (OSError, EOFError) as e:
        raise ValueError(f"{path}: cannot be read as {suffix} ({e}); the file is corrupt or not {suffix}") from None
    except Exception as e:  # zstandard raises its own ZstdError
        if type(e).__name__ == "ZstdError":
            raise ValueError(f"{path}: corrupt zstd stream ({e}); re-create the file") from None
        raise


def iter_file_documents(path: str | os.PathLike, text_field: str = "text", txt_mode: str = "file") -> Iterator[str]:
    """Documents of one file, in order (see the module docstring for the rules)."""
    path = Path(path)
    suffix = _suffix(path)
    if suffix is None:
        raise ValueError(f"{path}: unsupported file type; supported: {', '.join(SUPPORTED_SUFFIXES)}")
    if suffix == ".txt":
        yield from _txt_documents(path, txt_mode)
    elif suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            pf = pq.ParquetFile(path)
        except Exception as e:
            raise ValueError(f"{path}: not a readable parquet file ({e}); re-create it") from None
        if text_field not in pf.schema_arrow.names:
            raise ValueError(
                f"{path}: no column {text_field!r} (columns: {pf.schema_arrow.names}); set data.text_field"
            )
        try:
            batches = pf.iter_batches(columns=[text_field], batch_size=1024)
        except Exception as e:
            raise ValueError(f"{path}: corrupt parquet data ({e}); re-create the file") from None
        row = 0
        while True:
            try:  # only pyarrow's reading is wrapped (ArrowInvalid is a ValueError too)
                batch = next(batches, None)
                values = [] if batch is None else batch.column(0).to_pylist()
            except Exception as e:
                raise ValueError(f"{path}: corrupt parquet data ({e}); re-create the file") from None
            if batch is None:
                break
            for value in values:
                text = "" if value is None else str(value)
                _refuse_nul(text, f"{path} row {row} ({text_field!r})")
                row += 1
                yield text
    else:
        for number, line in _jsonl_lines(path, suffix):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{number}: invalid JSON ({e.msg}); fix or remove that line") from None
            value = _field(record, text_field)
            if not isinstance(value, str):
                raise ValueError(
                    f"{path}:{number}: no string field {text_field!r} in this record; "
                    "set data.text_field to the field that holds the text"
                )
            _refuse_nul(value, f"{path}:{number}")
            yield value


def iter_documents(root: str | os.PathLike, domain: str, text_field: str = "text",
                   txt_mode: str = "file") -> Iterator[str]:
    """All documents of RAW/<domain>, files in sorted order."""
    for path in domain_files(root, domain):
        yield from iter_file_documents(path, text_field=text_field, txt_mode=txt_mode)


def files_fingerprint(files: list[Path]) -> str:
    """Cheap identity of a file set: paths, sizes and modification times."""
    h = hashlib.sha256()
    for p in files:
        st = p.stat()
        h.update(f"{p}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def sanitize_domain(name: str) -> str:
    cleaned = re.sub(r"[^a-z0-9]+", "_", str(name).lower()).strip("_")
    if not cleaned:
        raise ValueError(f"domain name {name!r} has no letters or digits; it cannot name a folder")
    return cleaned


def write_if_changed(path: Path, text: str) -> bool:
    """Write atomically, but leave the file (and its mtime) alone when the content is the same."""
    data = text.encode("utf-8")
    if path.is_file() and path.stat().st_size == len(data) and path.read_bytes() == data:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp-{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return True


def split_hf_dataset(records, domain_field: str, out_root: str | os.PathLike, *, text_field: str = "text",
                     max_docs_per_domain: int | None = None, progress=None) -> dict[str, int]:
    """Route records (an iterable of dicts, e.g. a streaming HF dataset) into RAW/<domain>/hf.jsonl."""
    out_root = Path(out_root)
    buffers: dict[str, list[str]] = {}
    for i, record in enumerate(records):
        domain = _field(record, domain_field)
        if domain is None:
            raise ValueError(f"record {i}: no field {domain_field!r}; set data.domain_field (e.g. meta.pile_set_name)")
        text = _field(record, text_field)
        if not isinstance(text, str):
            raise ValueError(f"record {i}: no string field {text_field!r}; set data.text_field")
        docs = buffers.setdefault(sanitize_domain(domain), [])
        if max_docs_per_domain is None or len(docs) < max_docs_per_domain:
            docs.append(json.dumps({"text": text}, ensure_ascii=False))
        if progress is not None:
            progress.update(1)
    if not buffers:
        raise ValueError("the dataset yielded no records")
    for domain, lines in buffers.items():
        write_if_changed(out_root / domain / "hf.jsonl", "\n".join(lines) + "\n")
    return {d: len(v) for d, v in buffers.items()}


def load_hf_records(name: str, split: str = "train", data_files: Any = None, config_name: str | None = None,
                    streaming: bool = True, max_records: int | None = None):
    """Records of a Hugging Face dataset (a hub name, or a local builder like 'json' with data_files)."""
    import itertools

    from datasets import load_dataset

    ds = load_dataset(name, config_name, split=split, data_files=data_files, streaming=streaming)
    return itertools.islice(ds, max_records) if max_records else ds


# ------------------------------------------------------------------------------- demo corpus
def _stdlib_dir() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def _package_dirs() -> list[Path]:
    paths = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    return sorted(Path(p) for p in paths if Path(p).is_dir())


def _stdlib_py_files() -> list[Path]:
    std = _stdlib_dir()
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
    roots = [Path(sysconfig.get_paths()["include"])] + [d / "torch" / "include" for d in _package_dirs()]
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
    candidates = sorted(_stdlib_dir().glob("LICENSE*"))
    for d in _package_dirs():
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
    roots = [_stdlib_dir()] + _package_dirs()
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
