"""Tests for mixtrain.prepare.tokenizer: balanced sample, SentencePiece training, byte fallback, BOS/EOS,
HF tokenizer.json files, open_tokenizer's dispatch and pickling (worker processes)."""

import pickle

import pytest

from mixtrain.prepare.tokenizer import HFTokenizer, Tokenizer, balanced_sample, open_tokenizer, train_tokenizer

TEXT = ["the quick brown fox jumps over the lazy dog %d times" % i for i in range(300)]


def write_hf_tokenizer(path, specials=("<unk>", "<s>", "</s>"), vocab_size=300):
    """A real byte-level BPE tokenizer.json trained with the `tokenizers` library (no download)."""
    pytest.importorskip("tokenizers")
    from tokenizers import Tokenizer as HFTok, decoders, models, pre_tokenizers, trainers

    tk = HFTok(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(specials),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tk.train_from_iterator(TEXT, trainer=trainer)
    tk.save(str(path))
    return path


def test_balanced_sample_takes_equal_bytes_per_domain():
    docs = {"big": ["a" * 50 + "\n"] * 1000, "small": ["b" * 50 + "\n"] * 30}
    sample = balanced_sample(docs, sample_bytes_per_domain=1000)
    big = sum(len(s) for s in sample if s.startswith("a"))
    small = sum(len(s) for s in sample if s.startswith("b"))
    assert 1000 <= big <= 1050 and 1000 <= small <= 1050
    with pytest.raises(ValueError, match="every domain is empty"):
        balanced_sample({"x": ["", "  "]}, 100)


def test_trained_tokenizer_round_trips_unseen_bytes(tmp_path):
    text = ["the quick brown fox jumps over the lazy dog %d times" % i for i in range(300)]
    path = train_tokenizer(balanced_sample({"p": text}, 100_000), tmp_path / "t.model", vocab_size=300)
    tok = Tokenizer(path)
    assert tok.vocab_size == 300 and (tok.bos_id, tok.eos_id) == (1, 2)
    docs = ["the lazy fox", "ünïcödé ✓ 漢字 never seen"]
    encoded = tok.encode_documents(docs)
    for doc, ids in zip(docs, encoded):
        assert ids.dtype.name == "int32" and ids[0] == tok.bos_id and ids[-1] == tok.eos_id
        assert tok.decode(ids) == doc  # byte fallback: nothing is lost


def test_impossible_vocab_sizes_are_clear_errors(tmp_path):
    text = ["the quick brown fox jumps over the lazy dog %d times" % i for i in range(300)]
    with pytest.raises(ValueError, match="lower tokenizer.vocab_size"):
        train_tokenizer(text, tmp_path / "t.model", vocab_size=50000)
    with pytest.raises(ValueError, match="raise tokenizer.vocab_size"):
        train_tokenizer(text + ["".join(chr(0x4E00 + i) for i in range(400))], tmp_path / "t.model", vocab_size=300)


def test_hf_tokenizer_json_encodes_with_bos_eos_and_round_trips(tmp_path):
    path = write_hf_tokenizer(tmp_path / "tokenizer.json")
    tok = open_tokenizer(path)
    assert isinstance(tok, HFTokenizer) and tok.kind == "hf"
    assert (tok.bos_id, tok.eos_id) == (1, 2) and tok.vocab_size == 300
    docs = ["the lazy fox", "ünïcödé ✓ 漢字 never seen"]
    for doc, ids in zip(docs, tok.encode_documents(docs)):
        assert ids.dtype.name == "int32" and ids[0] == tok.bos_id and ids[-1] == tok.eos_id
        assert tok.bos_id not in ids[1:-1].tolist() and tok.eos_id not in ids[1:-1].tolist()
        assert tok.decode(ids) == doc  # byte-level BPE: nothing is lost


def test_hf_tokenizer_without_bos_eos_names_the_file_and_the_option(tmp_path):
    path = write_hf_tokenizer(tmp_path / "tokenizer.json", specials=("[UNK]", "[CLS]", "[SEP]"))
    with pytest.raises(ValueError, match=r"tokenizer.json has no BOS token .*tokenizer.bos_token="):
        open_tokenizer(path)
    tok = open_tokenizer(path, bos_token="[CLS]", eos_token="[SEP]")
    assert (tok.bos_id, tok.eos_id) == (1, 2)
    with pytest.raises(ValueError, match=r"""is not a string; quote it.*'tokenizer.bos_token="CLS"'"""):
        open_tokenizer(path, bos_token=["CLS"], eos_token="[SEP]")  # what Hydra makes of bos_token=[CLS]
    with pytest.raises(ValueError, match=r"tokenizer.eos_token='<eos>' is not in the vocabulary"):
        open_tokenizer(path, bos_token="[CLS]", eos_token="<eos>")


def test_open_tokenizer_dispatches_and_both_kinds_pickle(tmp_path):
    spm = open_tokenizer(train_tokenizer(balanced_sample({"p": TEXT}, 100_000), tmp_path / "t.model", vocab_size=300))
    assert isinstance(spm, Tokenizer) and spm.kind == "spm"
    hf_path = write_hf_tokenizer(tmp_path / "hf_tokenizer.json", specials=("<unk>", "[CLS]", "[SEP]"))
    hf = open_tokenizer(hf_path, bos_token="[CLS]", eos_token="[SEP]")
    for tok in (spm, hf):  # a worker process gets the tokenizer by pickle: same ids after the trip
        clone = pickle.loads(pickle.dumps(tok))
        assert type(clone) is type(tok) and (clone.bos_id, clone.eos_id) == (tok.bos_id, tok.eos_id)
        assert [a.tolist() for a in clone.encode_documents(TEXT[:3])] == [a.tolist() for a in tok.encode_documents(TEXT[:3])]
    with pytest.raises(FileNotFoundError, match="missing.json does not exist"):
        open_tokenizer(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ValueError, match="bad.json is not a Hugging Face tokenizer.json"):
        open_tokenizer(tmp_path / "bad.json")


def test_open_data_tokenizer_reads_the_manifest_and_its_special_ids(tmp_path):
    import json

    from mixtrain.prepare.tokenizer import open_data_tokenizer

    write_hf_tokenizer(tmp_path / "hf_tokenizer.json", specials=("<unk>", "[CLS]", "[SEP]"))
    manifest = {"tokenizer": "hf_tokenizer.json", "vocab_size": 300, "bos_id": 1, "eos_id": 2}
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    tok = open_data_tokenizer(tmp_path)  # [CLS]/[SEP] are no default names: the manifest's ids decide
    assert isinstance(tok, HFTokenizer) and (tok.bos_token, tok.eos_token) == ("[CLS]", "[SEP]")
    (tmp_path / "manifest.json").write_text(json.dumps({**manifest, "vocab_size": 301}))
    with pytest.raises(ValueError, match="is not the tokenizer .*manifest.json records.*re-run mixtrain.prepare"):
        open_data_tokenizer(tmp_path)
    with pytest.raises(FileNotFoundError, match="run mixtrain.prepare first"):
        open_data_tokenizer(tmp_path / "nothing")


# Strings on which an HF conversion of a SentencePiece model has gone wrong: literal special and
# byte piece names, whitespace runs and tabs, non-Latin scripts, digits, empty text
EXACT_STRINGS = [
    "a <s> b </s> c <unk> d", "x</s>y", "<s>", "</s>", "<unk>", "<s><s></s>", "<0x41>", "bytes <0xE6><0x97>",
    "▁ a literal meta space", "\ttab", "a\tb\t\tc", "\t\t  mixed indent", "  two leading spaces", " one",
    "trailing  ", "many     spaces   inside", "\n\nnewlines\n", "\r\n windows line", "", " ", "漢字とかなカナ",
    "Ελληνικά κείμενο", "русский текст", "emoji 🚀🔥 done", "x 9 99 999", "12345 6789 0", "3.14159e-10",
    "mixed12abc34", "def f(x):\n    return x * 12  # code", "a,b,c\n1,22,333", "ünïcödé ✓", "\u00a0nbsp",
    "zero\u200bwidth", "<<s>>", "</ s>",
]
PIECE_NAMES = ("<s>", "</s>", "<unk>", "<0x")  # literal piece names: exact for BPE only (see the converter)


def _spm_for_conversion(tmp_path, model_type):
    import numpy as np

    words = "the model reads data from many domains and learns which mixture of text helps most".split()
    rng = np.random.default_rng(0)
    text = TEXT + [" ".join(rng.choice(words, size=12)) for _ in range(300)]
    text += ["def f(x):\n    return x * 12  # code", "a,b,c\n1,22,333", "<a href> </div> <s>"] * 20
    return text, Tokenizer(train_tokenizer(balanced_sample({"p": text}, 100_000), tmp_path / "t.model",
                                           vocab_size=320, model_type=model_type))


@pytest.mark.parametrize("model_type", ["bpe", "unigram"])
def test_sentencepiece_to_hf_json_encodes_exactly_like_sentencepiece(tmp_path, model_type):
    pytest.importorskip("tokenizers")
    from tokenizers import Tokenizer as HFTok

    from mixtrain.prepare.tokenizer import sentencepiece_to_hf_json

    text, tok = _spm_for_conversion(tmp_path, model_type)
    hf = HFTok.from_str(sentencepiece_to_hf_json(tok.model_path))
    docs = text[:5] + EXACT_STRINGS
    if model_type == "unigram":
        docs = [d for d in docs if not any(name in d for name in PIECE_NAMES)]
    assert len(docs) >= 25
    for doc, ids in zip(docs, tok.encode_documents(docs)):
        assert hf.encode(doc, add_special_tokens=False).ids == ids[1:-1].tolist(), doc
        assert hf.encode(doc).ids == ids[:-1].tolist()  # the post-processor adds BOS, as LlamaTokenizer does
        assert hf.decode(ids[1:-1].tolist()) == tok.decode(ids)  # = doc, but SentencePiece too decodes "▁" as " "


def test_exported_spm_tokenizer_in_transformers_treats_special_names_as_text(tmp_path):
    """AutoTokenizer on an export gives SentencePiece's ids on every string, literal "</s>" included."""
    pytest.importorskip("transformers")
    from transformers import AutoTokenizer

    from mixtrain.model.export import write_tokenizer

    _, tok = _spm_for_conversion(tmp_path, "bpe")
    (tmp_path / "hf").mkdir()
    write_tokenizer(tok, tmp_path / "hf", model_max_length=64)
    hf_tok = AutoTokenizer.from_pretrained(str(tmp_path / "hf"))
    assert (hf_tok.bos_token_id, hf_tok.eos_token_id, hf_tok.unk_token_id) == (1, 2, 0)
    assert len(hf_tok) == tok.vocab_size  # no token was added on top of SentencePiece's vocabulary
    for doc, ids in zip(EXACT_STRINGS, tok.encode_documents(EXACT_STRINGS)):
        assert hf_tok(doc)["input_ids"] == ids[:-1].tolist(), doc
        assert hf_tok(doc, add_special_tokens=False)["input_ids"] == ids[1:-1].tolist(), doc
        assert hf_tok.decode(ids[1:-1].tolist()) == tok.decode(ids)
    assert hf_tok.decode([1, *tok.sp.encode("x</s>y"), 2], skip_special_tokens=True) == "x</s>y"
