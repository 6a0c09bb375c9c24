"""SentencePiece tokenizer: train on a sample balanced across domains, load, encode with BOS/EOS.

Place in the flow: corpus.py documents -> **tokenizer.py** -> shards.py token streams.

Training sample: the same number of bytes from every domain (`sample_bytes_per_domain`),
documents split into lines (SentencePiece's "sentences", long lines cut), so that a large
domain cannot dominate the vocabulary. Byte fallback is on: every byte sequence encodes.
Ids: unk=0, bos=1, eos=2, no pad.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

MAX_SENTENCE_BYTES = 4096


def balanced_sample(domain_docs: Mapping[str, Iterable[str]], sample_bytes_per_domain: int) -> list[str]:
    """Lines from every domain's documents, up to the same byte budget per domain, in domain order."""
    sentences: list[str] = []
    for domain, docs in domain_docs.items():
        taken = 0
        for doc in docs:
            for line in doc.splitlines():
                line = line.strip()
                if not line:
                    continue
                line = line.encode("utf-8")[:MAX_SENTENCE_BYTES].decode("utf-8", errors="ignore")
                sentences.append(line)
                taken += len(line.encode("utf-8"))
                if taken >= sample_bytes_per_domain:
                    break
            if taken >= sample_bytes_per_domain:
                break
    if not sentences:
        raise ValueError("no text to train the tokenizer on: every domain is empty")
    return sentences


def train_tokenizer(sentences: list[str], model_path: str | os.PathLike, vocab_size: int = 8192,
                    model_type: str = "bpe", character_coverage: float = 0.9995, num_threads: int = 2) -> Path:
    """Train SentencePiece and write the model atomically to `model_path`."""
    import sentencepiece as spm

    model_path = Path(model_path)
    buffer = io.BytesIO()
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(sentences), model_writer=buffer, vocab_size=int(vocab_size),
            model_type=model_type, byte_fallback=True, character_coverage=character_coverage,
            unk_id=0, bos_id=1, eos_id=2, pad_id=-1, num_threads=int(num_threads),
            max_sentence_length=MAX_SENTENCE_BYTES * 4, shuffle_input_sentence=False,
            input_sentence_size=0, train_extremely_large_corpus=False, minloglevel=2,
            hard_vocab_limit=True, split_digits=True, allow_whitespace_only_pieces=True,
            remove_extra_whitespaces=False, normalization_rule_name="identity",
        )
    except RuntimeError as e:
        hint = ("raise tokenizer.vocab_size (it must cover every distinct character plus the special pieces)"
                if "required_chars" in str(e) else "the sample is too small for it: lower tokenizer.vocab_size or add text")
        raise ValueError(f"SentencePiece could not train a vocabulary of {vocab_size} ({e}); {hint}") from None
    model_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = model_path.with_name(model_path.name + f".tmp-{os.getpid()}")
    tmp.write_bytes(buffer.getvalue())
    os.replace(tmp, model_path)
    return model_path


class Tokenizer:
    """A loaded SentencePiece model; `encode_documents` returns int32 arrays [bos] + ids + [eos]."""

    def __init__(self, model_path: str | os.PathLike):
        import sentencepiece as spm

        self.model_path = Path(model_path)
        if not self.model_path.is_file():
            raise FileNotFoundError(f"tokenizer model {self.model_path} does not exist")
        self.sp = spm.SentencePieceProcessor(model_file=str(self.model_path))
        self.vocab_size = int(self.sp.get_piece_size())
        self.bos_id, self.eos_id = int(self.sp.bos_id()), int(self.sp.eos_id())
        if self.bos_id < 0 or self.eos_id < 0:
            raise ValueError(f"tokenizer {self.model_path} has no BOS/EOS pieces; mixtrain needs both")

    def encode_documents(self, docs: list[str], num_threads: int = 2) -> list[np.ndarray]:
        ids = self.sp.encode(docs, num_threads=num_threads)
        return [np.asarray([self.bos_id, *x, self.eos_id], dtype=np.int32) for x in ids]

    def decode(self, ids) -> str:
        return self.sp.decode([int(i) for i in ids if int(i) not in (self.bos_id, self.eos_id)])


def file_hash(path: str | os.PathLike) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]
