"""Every document of a raw corpus as (source, doc, text), tolerant of bad documents.

Place in the flow: RAW -> **documents.py** -> embed/pipeline.py (and cluster/write.py, which reads the
same documents again to write OUT/<cluster>/). `source` is the file's path relative to RAW, `doc`
the document's index within the file (0 for a one-document file). The file rules are those of
prepare/corpus.py (txt modes, jsonl(.gz/.zst), parquet, `text_field`), with one difference: a
document that is empty, not UTF-8 or not valid JSON is *skipped and counted* (`Skipped`, with the
reason), where prepare refuses the whole file; an unlabelled crawl has such documents, and one of
them must not stop an embedding of a million. Nothing is dropped without a record.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from mixtrain.prepare.corpus import JSONL_OPENERS, _field, _suffix, supported_suffixes

TXT_MODES = ("file", "lines", "blocks")


@dataclass
class Skipped:
    """Documents left out, by reason, with every (source, doc, reason) for skipped.csv."""

    rows: list[tuple[str, int, str]] = field(default_factory=list)

    def add(self, source: str, doc: int, reason: str) -> None:
        self.rows.append((source, int(doc), reason))

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for _, _, reason in self.rows:
            key = reason.split(":")[0]
            out[key] = out.get(key, 0) + 1
        return out


def corpus_files(root: str | os.PathLike) -> list[Path]:
    """Every supported file under RAW (recursive, sorted); an unsupported file is an error naming it."""
    from mixtrain.errors import DataError

    root = Path(root)
    if not root.is_dir():
        raise DataError(f"raw corpus folder {root} does not exist; give the folder that holds the text files")
    files = sorted(p for p in root.rglob("*") if p.is_file() and not any(
        part.startswith(".") for part in p.relative_to(root).parts))
    unsupported = [p for p in files if _suffix(p) is None]
    if unsupported:
        raise DataError(f"{unsupported[0]}: unsupported file type ({len(unsupported)} such file(s) in {root}); "
                        f"supported: {', '.join(supported_suffixes())}; convert it or move it out of {root}")
    if not files:
        raise DataError(f"{root} holds no text files ({', '.join(supported_suffixes())}); add some")
    return files


def _decoded(raw: bytes, source: str, doc: int, skipped: Skipped) -> str | None:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        skipped.add(source, doc, f"non-utf8: byte {e.start}")
        return None
    if "\x00" in text:
        skipped.add(source, doc, "binary: NUL bytes")
        return None
    if not text.strip():
        skipped.add(source, doc, "empty")
        return None
    return text


def _txt_units(path: Path, txt_mode: str) -> Iterator[bytes]:
    if txt_mode == "file":
        yield path.read_bytes()
        return
    with open(path, "rb") as f:
        block: list[bytes] = []
        for line in f:
            if txt_mode == "lines":
                if line.strip():
                    yield line.rstrip(b"\r\n")
            elif line.strip():
                block.append(line)
            elif block:
                yield b"".join(block).rstrip(b"\r\n")
                block = []
        if block:
            yield b"".join(block).rstrip(b"\r\n")


def _txt(path: Path, source: str, txt_mode: str, fields: tuple[str, ...], skipped: Skipped):
    for doc, raw in enumerate(_txt_units(path, txt_mode)):
        text = _decoded(raw, source, doc, skipped)
        if text is not None:
            yield doc, text, {f: float("nan") for f in fields}


def _number(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def _jsonl(path: Path, source: str, text_field: str, fields: tuple[str, ...], skipped: Skipped):
    doc = 0
    with JSONL_OPENERS[_suffix(path)](path) as f:
        for raw in f:
            if not raw.strip():
                continue  # a blank line is no record (as in prepare/corpus.py)
            line = _decoded(raw, source, doc, skipped)
            if line is not None:
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as e:
                    skipped.add(source, doc, f"invalid-json: {e.msg}")
                    record = None
                value = _field(record, text_field) if record is not None else None
                if record is not None and not isinstance(value, str):
                    skipped.add(source, doc, f"no-text-field: {text_field!r}")
                elif value is not None and _decoded(value.encode("utf-8", "surrogatepass"), source, doc, skipped):
                    yield doc, value, {f: _number(_field(record, f)) for f in fields}
            doc += 1


def _parquet(path: Path, source: str, text_field: str, fields: tuple[str, ...], skipped: Skipped):
    import pyarrow.parquet as pq

    from mixtrain.errors import DataError

    pf = pq.ParquetFile(path)
    names = pf.schema_arrow.names
    missing = [c for c in (text_field, *fields) if c not in names]
    if missing:
        raise DataError(f"{path}: no column {missing[0]!r} (columns: {names}); pass --text-field / --fields "
                        "naming columns the file has")
    doc = 0
    for batch in pf.iter_batches(columns=[text_field, *fields], batch_size=4096):
        columns = [batch.column(i).to_pylist() for i in range(batch.num_columns)]
        for row, value in enumerate(columns[0]):
            text = "" if value is None else str(value)
            if text.strip() and "\x00" not in text:
                yield doc, text, {f: _number(columns[1 + i][row]) for i, f in enumerate(fields)}
            else:
                skipped.add(source, doc, "empty" if not text.strip() else "binary: NUL bytes")
            doc += 1


def iter_corpus(root: str | os.PathLike, skipped: Skipped, *, text_field: str = "text", txt_mode: str = "file",
                fields: tuple[str, ...] = (), files: list[Path] | None = None):
    """(source, doc, text, {field: float}) for every usable document under RAW, in sorted file order."""
    from mixtrain.errors import ConfigError

    if txt_mode not in TXT_MODES:
        raise ConfigError(f"--txt-mode {txt_mode!r}: use one of {TXT_MODES}")
    root = Path(root)
    for path in corpus_files(root) if files is None else files:
        source = path.relative_to(root).as_posix()
        suffix = _suffix(path)
        if suffix == ".txt":
            docs = _txt(path, source, txt_mode, fields, skipped)
        elif suffix == ".parquet":
            docs = _parquet(path, source, text_field, fields, skipped)
        elif suffix in JSONL_OPENERS:
            docs = _jsonl(path, source, text_field, fields, skipped)
        else:
            raise ConfigError(f"{path}: embed reads .txt, .jsonl(.gz/.zst) and .parquet; convert this file")
        for doc, text, extra in docs:
            yield source, doc, text, extra


def domain_of(source: str) -> str:
    """The domain a source file belongs to: its first folder under RAW ("" for a file at the top)."""
    head, sep, _ = source.partition("/")
    return head if sep else ""
