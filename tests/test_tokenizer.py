"""Tests for mixtrain.tokenizer: balanced sample, SentencePiece training, byte fallback, BOS/EOS."""

import pytest

from mixtrain.tokenizer import Tokenizer, balanced_sample, train_tokenizer


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
