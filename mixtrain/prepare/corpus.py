"""Raw text per domain: readers for user folders (a registry by file suffix) and a Hugging Face splitter.

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
Records are streamed to the files as they arrive (memory stays flat); every record is kept
unless `data.max_docs_per_domain` caps a domain.

Readers are registries, not if/elif chains: `READERS` maps a file suffix to its reader
(`register_reader(".ext")` adds one), `TXT_MODES` a txt_mode to its splitter, `JSONL_OPENERS`
a compression suffix to its opener. The demo corpus builder lives in demo_corpus.py.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import re
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from mixtrain.store.runfiles import atomic_write

Reader = Callable[[Path, str, str], Iterator[str]]  # (path, text_field, txt_mode) -> documents
READERS: dict[str, Reader] = {}  # file suffix (lower case) -> reader; filled by register_reader below


def register_reader(suffix: str) -> Callable[[Reader], Reader]:
    """Decorator: `fn(path, text_field, txt_mode)` reads the documents of every `*<suffix>` file."""
    def add(fn: Reader) -> Reader:
        READERS[suffix.lower()] = fn
        return fn
    return add


def supported_suffixes() -> tuple[str, ...]:
    return tuple(READERS)


def _suffix(path: Path) -> str | None:
    """The registered suffix of a file name (longest match: `.jsonl.gz` before `.gz`), or None."""
    name = path.name.lower()
    for suffix in sorted(READERS, key=len, reverse=True):
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
            f"supported: {', '.join(supported_suffixes())} - convert it or move it out of {folder}"
        )
    if not files:
        raise ValueError(f"domain {domain!r}: folder {folder} is empty; add {'/'.join(supported_suffixes())} files")
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


def _txt_file(path: Path) -> Iterator[str]:
    text = _read_text(path)
    _refuse_nul(text, f"{path} (at character {text.find(chr(0))})")
    yield text


def _txt_lines_mode(path: Path) -> Iterator[str]:
    for _, line in _txt_lines(path):
        if line.strip():
            yield line


def _txt_blocks(path: Path) -> Iterator[str]:
    block: list[str] = []
    for _, line in _txt_lines(path):
        if line.strip():
            block.append(line)
        elif block:
            yield "\n".join(block)
            block = []
    if block:
        yield "\n".join(block)


# txt_mode -> (description, splitter); the descriptions make the error hint
TXT_MODES: dict[str, tuple[str, Callable[[Path], Iterator[str]]]] = {
    "file": ("one document per .txt file", _txt_file),
    "lines": ("one document per non-empty line", _txt_lines_mode),
    "blocks": ("documents separated by blank lines", _txt_blocks),
}
TXT_MODES_HINT = "data.txt_mode=" + " | ".join(f"{k} ({v[0]})" for k, v in TXT_MODES.items())


def other_txt_modes(txt_mode: str) -> str:
    """The fix to suggest when `txt_mode` is the wrong rule: the other modes, never the current one."""
    return " or ".join(f"data.txt_mode={k} ({v[0]})" for k, v in TXT_MODES.items() if k != txt_mode)


def check_txt_mode(txt_mode: str) -> None:
    if txt_mode not in TXT_MODES:
        raise ValueError(f"data.txt_mode={txt_mode!r} is not an option; use {TXT_MODES_HINT}")


@register_reader(".txt")
def _read_txt(path: Path, text_field: str, txt_mode: str) -> Iterator[str]:
    if txt_mode not in TXT_MODES:
        raise ValueError(f"{path}: data.txt_mode={txt_mode!r} is not an option; use {TXT_MODES_HINT}")
    produced = False
    for doc in TXT_MODES[txt_mode][1](path):
        produced = True
        yield doc
    if not produced:
        yield ""  # an empty file is counted as an empty document, never silently dropped


def _open_zst(path: Path) -> io.BufferedIOBase:
    import zstandard

    return io.BufferedReader(zstandard.ZstdDecompressor().stream_reader(open(path, "rb"), closefd=True))


# compression suffix of a JSON-lines file -> binary line reader
JSONL_OPENERS: dict[str, Callable[[Path], io.BufferedIOBase]] = {
    ".jsonl": lambda p: open(p, "rb"), ".jsonl.gz": lambda p: gzip.open(p, "rb"), ".jsonl.zst": _open_zst,
}


def _jsonl_lines(path: Path, suffix: str) -> Iterator[tuple[int, str]]:
    try:
        with JSONL_OPENERS[suffix](path) as raw:
            for number, line in enumerate(raw, start=1):
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


@register_reader(".parquet")
def _read_parquet(path: Path, text_field: str, txt_mode: str) -> Iterator[str]:
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


def _read_jsonl(path: Path, text_field: str, txt_mode: str) -> Iterator[str]:
    for number, line in _jsonl_lines(path, _suffix(path)):
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


for _jsonl_suffix in JSONL_OPENERS:
    register_reader(_jsonl_suffix)(_read_jsonl)


def iter_file_documents(path: str | os.PathLike, text_field: str = "text", txt_mode: str = "file") -> Iterator[str]:
    """Documents of one file, in order (see the module docstring for the rules)."""
    path = Path(path)
    suffix = _suffix(path)
    if suffix is None:
        raise ValueError(f"{path}: unsupported file type; supported: {', '.join(supported_suffixes())}")
    yield from READERS[suffix](path, text_field, txt_mode)


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
    atomic_write(path, data)
    return True


def _same_file(a: Path, b: Path) -> bool:
    if not (a.is_file() and b.is_file()) or a.stat().st_size != b.stat().st_size:
        return False
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            x, y = fa.read(1 << 20), fb.read(1 << 20)
            if x != y:
                return False
            if not x:
                return True


def split_hf_dataset(records, domain_field: str, out_root: str | os.PathLike, *, text_field: str = "text",
                     max_docs_per_domain: int | None = None, progress=None) -> dict[str, int]:
    """Route records (an iterable of dicts, e.g. a streaming HF dataset) into RAW/<domain>/hf.jsonl.

    Streamed: each record is appended to its domain's hidden temporary file as it arrives, so
    memory does not grow with the dataset. At the end every temporary replaces its hf.jsonl,
    except where the content is unchanged (the file and its mtime stay: prepare's fingerprints
    see no change). `max_docs_per_domain` (None: no cap) keeps the first N records of a domain.
    """
    out_root = Path(out_root)
    files: dict[str, Any] = {}
    counts: dict[str, int] = {}
    tmp_name = f".hf.jsonl.tmp-{os.getpid()}"  # hidden: domain_files never reads it
    try:
        for i, record in enumerate(records):
            domain = _field(record, domain_field)
            if domain is None:
                raise ValueError(f"record {i}: no field {domain_field!r}; set data.domain_field (e.g. meta.pile_set_name)")
            text = _field(record, text_field)
            if not isinstance(text, str):
                raise ValueError(f"record {i}: no string field {text_field!r}; set data.text_field")
            domain = sanitize_domain(domain)
            if domain not in files:
                (out_root / domain).mkdir(parents=True, exist_ok=True)
                files[domain] = open(out_root / domain / tmp_name, "w", encoding="utf-8")
                counts[domain] = 0
            if max_docs_per_domain is None or counts[domain] < max_docs_per_domain:
                files[domain].write(json.dumps({"text": text}, ensure_ascii=False) + "\n")
                counts[domain] += 1
            if progress is not None:
                progress.update(1)
        if not files:
            raise ValueError("the dataset yielded no records")
        for domain, f in files.items():
            f.close()
            tmp, final = out_root / domain / tmp_name, out_root / domain / "hf.jsonl"
            if _same_file(tmp, final):
                tmp.unlink()
            else:
                os.replace(tmp, final)
        return counts
    finally:
        for domain, f in files.items():
            f.close()
            (out_root / domain / tmp_name).unlink(missing_ok=True)


def load_hf_records(name: str, split: str = "train", data_files: Any = None, config_name: str | None = None,
                    streaming: bool = True, max_records: int | None = None):
    """Records of a Hugging Face dataset (a hub name, or a local builder like 'json' with data_files)."""
    import itertools

    from datasets import load_dataset

    ds = load_dataset(name, config_name, split=split, data_files=data_files, streaming=streaming)
    return itertools.islice(ds, max_records) if max_records else ds
