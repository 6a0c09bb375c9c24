"""Tests for mixtrain.prepare.corpus and mixtrain.prepare.demo_corpus: every reader, every bad-input error, the HF splitter,
the registries, the demo corpus."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from mixtrain.prepare import corpus, demo_corpus


def _write_formats(root: Path) -> None:
    d = root / "mixed"
    d.mkdir(parents=True)
    (d / "a.txt").write_text("first block\nstill first\n\n\nsecond block\n")
    (d / "b.jsonl").write_text(json.dumps({"text": "jsonl doc"}) + "\n\n" + json.dumps({"text": "two"}) + "\n")
    with gzip.open(d / "c.jsonl.gz", "wt") as f:
        f.write(json.dumps({"text": "gz doc"}) + "\n")
    import zstandard

    (d / "d.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress((json.dumps({"text": "zst doc"}) + "\n").encode()))
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"text": ["pq one", "pq two"]}), d / "e.parquet")


def test_reads_every_format_in_sorted_order(tmp_path):
    _write_formats(tmp_path)
    docs = list(corpus.iter_documents(tmp_path, "mixed"))
    assert docs == ["first block\nstill first\n\n\nsecond block\n", "jsonl doc", "two", "gz doc", "zst doc",
                    "pq one", "pq two"]
    blocks = list(corpus.iter_documents(tmp_path, "mixed", txt_mode="blocks"))
    assert blocks[:2] == ["first block\nstill first", "second block"]


def test_nested_text_field(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "x.jsonl").write_text(json.dumps({"meta": {"body": "deep"}}) + "\n")
    assert list(corpus.iter_documents(tmp_path, "d", text_field="meta.body")) == ["deep"]


@pytest.mark.parametrize("name, content, message", [
    ("bad.txt", b"ok \xff\xfe bad", r"bad.txt: not valid UTF-8 at byte 3.*iconv"),
    ("bad.jsonl", b'{"text": "a"}\n{"body": "b"}\n', r"bad.jsonl:2: no string field 'text'.*data.text_field"),
    ("bad2.jsonl", b'{"text": "a"}\nnot json\n', r"bad2.jsonl:2: invalid JSON"),
    ("bad.jsonl.gz", b"this is not gzip", r"bad.jsonl.gz: cannot be read as .jsonl.gz"),
    ("bad.jsonl.zst", b"this is not zstd", r"bad.jsonl.zst: corrupt zstd"),
    ("bad.parquet", b"not parquet", r"bad.parquet: not a readable parquet"),
    ("notes.docx", b"whatever", r"unsupported file .*notes.docx.*supported: .txt"),
])
def test_bad_input_names_the_file_and_the_fix(tmp_path, name, content, message):
    (tmp_path / "dom").mkdir()
    (tmp_path / "dom" / name).write_bytes(content)
    with pytest.raises(ValueError, match=message):
        list(corpus.iter_documents(tmp_path, "dom"))


def test_missing_and_empty_domains(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        corpus.list_domains(tmp_path / "nope")
    with pytest.raises(ValueError, match="no domain sub-folders"):
        corpus.list_domains(tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="domain 'empty'.*is empty"):
        corpus.domain_files(tmp_path, "empty")
    with pytest.raises(FileNotFoundError, match="domain 'ghost'"):
        corpus.domain_files(tmp_path, "ghost")


def test_parquet_without_the_column(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    (tmp_path / "d").mkdir()
    pq.write_table(pa.table({"content": ["x"]}), tmp_path / "d" / "p.parquet")
    with pytest.raises(ValueError, match="no column 'text'.*content"):
        list(corpus.iter_documents(tmp_path, "d"))


def test_hf_split_on_a_local_slimpajama_style_fixture(tmp_path):
    records = [
        {"text": "def f(): pass", "meta": {"redpajama_set_name": "RedPajamaGithub"}},
        {"text": "Once upon a time", "meta": {"redpajama_set_name": "RedPajamaBook"}},
        {"text": "import os", "meta": {"redpajama_set_name": "RedPajamaGithub"}},
        {"text": "extra github", "meta": {"redpajama_set_name": "RedPajamaGithub"}},
    ]
    src = tmp_path / "slimpajama.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in records))
    loaded = corpus.load_hf_records("json", split="train", data_files=str(src), streaming=True)
    counts = corpus.split_hf_dataset(loaded, "meta.redpajama_set_name", tmp_path / "raw", max_docs_per_domain=2)
    assert counts == {"redpajamagithub": 2, "redpajamabook": 1}
    assert list(corpus.iter_documents(tmp_path / "raw", "redpajamagithub")) == ["def f(): pass", "import os"]
    with pytest.raises(ValueError, match="no field 'meta.pile_set_name'"):
        corpus.split_hf_dataset(iter(records), "meta.pile_set_name", tmp_path / "raw2")
    assert corpus.sanitize_domain("Pile-CC") == "pile_cc"


def test_demo_corpus_has_distinct_deterministic_domains(tmp_path):
    a = demo_corpus.build_demo_corpus(tmp_path / "a", max_bytes_per_domain=300_000, progress=False)
    b = demo_corpus.build_demo_corpus(tmp_path / "b", max_bytes_per_domain=300_000, progress=False)
    assert len(a) >= 4 and a == b
    for domain in a:
        assert (tmp_path / "a" / domain / "demo.jsonl").read_bytes() == (tmp_path / "b" / domain / "demo.jsonl").read_bytes()
        assert a[domain]["num_bytes"] > 50_000
    # statistics clearly differ: e.g. share of characters that are letters
    def letters(domain):
        text = "".join(corpus.iter_documents(tmp_path / "a", domain))[:200_000]
        return sum(c.isalpha() for c in text) / len(text)
    shares = {d: letters(d) for d in a}
    assert max(shares.values()) - min(shares.values()) > 0.1, shares
    # unchanged content keeps its file (and mtime): idempotent downstream
    before = (tmp_path / "a" / "code" / "demo.jsonl").stat().st_mtime_ns
    demo_corpus.build_demo_corpus(tmp_path / "a", max_bytes_per_domain=300_000, progress=False)
    assert (tmp_path / "a" / "code" / "demo.jsonl").stat().st_mtime_ns == before


def test_txt_modes_lines_and_blocks_stream_documents(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.txt").write_text("one\r\n  two  \n\n\nthree\n   \nfour\nfive")
    assert list(corpus.iter_documents(tmp_path, "d", txt_mode="lines")) == ["one", "  two  ", "three", "four", "five"]
    assert list(corpus.iter_documents(tmp_path, "d", txt_mode="blocks")) == ["one\n  two  ", "three", "four\nfive"]
    assert list(corpus.iter_documents(tmp_path, "d", txt_mode="file")) == ["one\r\n  two  \n\n\nthree\n   \nfour\nfive"]


@pytest.mark.parametrize("txt_mode", ["file", "lines", "blocks"])
def test_empty_txt_file_is_counted_as_one_empty_document(tmp_path, txt_mode):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "empty.txt").write_text("\n  \n")
    assert [d.strip() for d in corpus.iter_documents(tmp_path, "d", txt_mode=txt_mode)] == [""]


def test_unknown_txt_mode_names_the_options(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.txt").write_text("x")
    with pytest.raises(ValueError, match=r"a.txt: data.txt_mode='line' is not an option.*file.*lines.*blocks"):
        list(corpus.iter_documents(tmp_path, "d", txt_mode="line"))
    with pytest.raises(ValueError, match=r"data.txt_mode='para'.*file \(one document per .txt file\)"):
        corpus.check_txt_mode("para")


@pytest.mark.parametrize("txt_mode", ["file", "lines", "blocks"])
def test_binary_txt_with_nul_bytes_is_refused(tmp_path, txt_mode):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "blob.txt").write_bytes(b"text line\nELF\x00\x00\x01binary\n")
    with pytest.raises(ValueError, match=r"blob.txt.*NUL bytes.*binary"):
        list(corpus.iter_documents(tmp_path, "d", txt_mode=txt_mode))


def test_nul_text_in_jsonl_and_parquet_is_refused(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    (tmp_path / "j").mkdir()
    (tmp_path / "j" / "a.jsonl").write_text(json.dumps({"text": "ok"}) + "\n" + json.dumps({"text": "bad\u0000"}) + "\n")
    with pytest.raises(ValueError, match=r"a.jsonl:2: contains NUL"):
        list(corpus.iter_documents(tmp_path, "j"))
    (tmp_path / "p").mkdir()
    pq.write_table(pa.table({"text": ["ok", "b\x00d"]}), tmp_path / "p" / "x.parquet")
    with pytest.raises(ValueError, match=r"x.parquet row 1 \('text'\): contains NUL"):
        list(corpus.iter_documents(tmp_path, "p"))


def test_txt_lines_mode_names_the_bad_utf8_line(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.txt").write_bytes(b"fine\nalso fine\nbad \xff here\n")
    with pytest.raises(ValueError, match=r"a.txt:3: not valid UTF-8.*iconv"):
        list(corpus.iter_documents(tmp_path, "d", txt_mode="lines"))


def test_reader_registry_takes_a_new_suffix(tmp_path, monkeypatch):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "notes.md").write_text("# one\n\n# two\n")
    with pytest.raises(ValueError, match="unsupported file.*notes.md"):
        corpus.domain_files(tmp_path, "d")
    monkeypatch.setitem(corpus.READERS, ".md", lambda path, text_field, txt_mode: iter(path.read_text().split("\n\n")))
    assert ".md" in corpus.supported_suffixes()
    assert list(corpus.iter_documents(tmp_path, "d")) == ["# one", "# two\n"]


def test_source_registry_and_unknown_source(tmp_path, monkeypatch):
    from mixtrain.prepare import pipeline as prepare

    assert {"demo", "dir", "hf"} <= set(prepare.SOURCES)
    with pytest.raises(ValueError, match=r"unknown data.source 'ftp'.*demo.*dir.*hf"):
        prepare.materialize_raw({"source": "ftp"}, tmp_path)
    monkeypatch.setitem(prepare.SOURCES, "mine", lambda data, data_dir: data_dir / "mine")
    assert prepare.materialize_raw({"source": "mine"}, tmp_path) == tmp_path / "mine"
    with pytest.raises(ValueError, match=r"demo domains \['nope'\] do not exist"):
        demo_corpus.build_demo_corpus(tmp_path / "x", domains=("nope",), progress=False)


def test_hf_split_streams_every_record_without_a_cap_and_keeps_unchanged_files(tmp_path):
    def records(n):
        for i in range(n):  # a generator: never a list in memory
            yield {"text": f"doc {i}", "meta": {"pile_set_name": "Pile-CC" if i % 3 else "Github"}}

    from omegaconf import OmegaConf

    assert OmegaConf.load(Path(__file__).parents[2] / "conf" / "data" / "hf.yaml").max_docs_per_domain is None
    counts = corpus.split_hf_dataset(records(30_000), "meta.pile_set_name", tmp_path / "raw")
    assert counts == {"github": 10_000, "pile_cc": 20_000}  # no default cap
    docs = list(corpus.iter_documents(tmp_path / "raw", "github"))
    assert len(docs) == 10_000 and docs[:2] == ["doc 0", "doc 3"]
    assert not [p for p in (tmp_path / "raw").rglob("*") if ".tmp-" in p.name]
    before = (tmp_path / "raw" / "github" / "hf.jsonl").stat().st_mtime_ns
    corpus.split_hf_dataset(records(30_000), "meta.pile_set_name", tmp_path / "raw")
    assert (tmp_path / "raw" / "github" / "hf.jsonl").stat().st_mtime_ns == before
    corpus.split_hf_dataset(records(30_000), "meta.pile_set_name", tmp_path / "raw", max_docs_per_domain=5)
    assert len(list(corpus.iter_documents(tmp_path / "raw", "pile_cc"))) == 5

    def failing():
        yield from records(10)
        raise RuntimeError("connection lost")
    with pytest.raises(RuntimeError, match="connection lost"):
        corpus.split_hf_dataset(failing(), "meta.pile_set_name", tmp_path / "raw")
    assert len(list(corpus.iter_documents(tmp_path / "raw", "pile_cc"))) == 5  # the last complete split stays
    assert not [p for p in (tmp_path / "raw").rglob("*") if ".tmp-" in p.name]
