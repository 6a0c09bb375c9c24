"""Tests for mixtrain.tokenizer: balanced sample, SentencePiece training, byte fallback, BOS/EOS,
HF tokenizer.json files, open_tokenizer's dispatch and pickling (worker processes)."""

import pickle

import pytest

from mixtrain.tokenizer import HFTokenizer, Tokenizer, balanced_sample, open_tokenizer, train_tokenizer

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

    from mixtrain.tokenizer import open_data_tokenizer

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


@pytest.mark.parametrize("model_type", ["bpe", "unigram"])
def test_sentencepiece_to_hf_json_encodes_exactly_like_sentencepiece(tmp_path, model_type):
    pytest.importorskip("tokenizers")
    from tokenizers import Tokenizer as HFTok

    from mixtrain.tokenizer import sentencepiece_to_hf_json

    import numpy as np

    words = "the model reads data from many domains and learns which mixture of text helps most".split()
    rng = np.random.default_rng(0)
    text = TEXT + [" ".join(rng.choice(words, size=12)) for _ in range(300)]
    text += ["def f(x):\n    return x * 12  # code", "a,b,c\n1,22,333"] * 20
    tok = Tokenizer(train_tokenizer(balanced_sample({"p": text}, 100_000), tmp_path / "t.model", vocab_size=320,
                                    model_type=model_type))
    hf = HFTok.from_str(sentencepiece_to_hf_json(tok.model_path))
    docs = text[:5] + ["  two leading spaces", " one", "\ttab\n\n  indented", "trailing  ", "ünïcödé ✓ 漢字", "x 9 99 999"]
    for doc, ids in zip(docs, tok.encode_documents(docs)):
        assert hf.encode(doc, add_special_tokens=False).ids == ids[1:-1].tolist(), doc
        assert hf.encode(doc).ids == ids[:-1].tolist()  # the post-processor adds BOS, as LlamaTokenizer does
        assert hf.decode(ids[1:-1].tolist()) == doc
