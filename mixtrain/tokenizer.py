"""Tokenizers: train SentencePiece on a sample balanced across domains, or open an existing
SentencePiece `.model` / Hugging Face `tokenizer.json`; encode documents with BOS/EOS.

Place in the flow: corpus.py documents -> **tokenizer.py** -> shards.py token streams;
export.py copies the same file next to an exported model.

`open_tokenizer(path)` picks the class from the file: `.model` -> `Tokenizer` (SentencePiece),
`.json` -> `HFTokenizer` (the `tokenizers` library, extra `hf`). Both have one interface:
`model_path`, `kind`, `vocab_size`, `bos_id`, `eos_id`, `encode_documents(docs)`, `decode(ids)`,
and both pickle as (path, options), so worker processes re-open them from the file.

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

    kind = "spm"

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

    # the SentencePiece processor does not pickle: a worker process re-opens the file
    def __getstate__(self) -> dict:
        return {"model_path": str(self.model_path)}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["model_path"])


# Special tokens tried in order when tokenizer.bos_token / eos_token are not given (Llama 1/2,
# Llama 3, Gemma, GPT-2 style); GPT-2's single <|endoftext|> serves as both, as in GPT-2 itself.
BOS_CANDIDATES = ("<s>", "<|begin_of_text|>", "<bos>", "<|startoftext|>", "<|endoftext|>")
EOS_CANDIDATES = ("</s>", "<|end_of_text|>", "<eos>", "<|endoftext|>")


class HFTokenizer:
    """A Hugging Face `tokenizer.json` (the `tokenizers` library); same interface as `Tokenizer`.

    The file's own post-processor (template) is not used: ids are [bos] + encode(text, no
    special tokens) + [eos], exactly as for SentencePiece, so shards look the same either way.
    """

    kind = "hf"

    def __init__(self, model_path: str | os.PathLike, bos_token: str | None = None, eos_token: str | None = None):
        try:
            from tokenizers import Tokenizer as _HFTok
        except ImportError:
            raise ImportError("an HF tokenizer.json needs the `tokenizers` library: "
                              "pip install -e '.[hf]' (or pip install tokenizers)") from None
        self.model_path = Path(model_path)
        if not self.model_path.is_file():
            raise FileNotFoundError(f"tokenizer file {self.model_path} does not exist")
        try:
            self.tk = _HFTok.from_file(str(self.model_path))
        except Exception as e:
            raise ValueError(f"{self.model_path} is not a Hugging Face tokenizer.json ({e})") from None
        self.vocab_size = int(self.tk.get_vocab_size(with_added_tokens=True))
        self.bos_token = self._special(bos_token, BOS_CANDIDATES, "bos")
        self.eos_token = self._special(eos_token, EOS_CANDIDATES, "eos")
        self.bos_id, self.eos_id = int(self.tk.token_to_id(self.bos_token)), int(self.tk.token_to_id(self.eos_token))

    def _special(self, given: str | None, candidates: tuple[str, ...], which: str) -> str:
        if given is not None:
            if self.tk.token_to_id(given) is None:
                raise ValueError(f"tokenizer.{which}_token={given!r} is not in the vocabulary of {self.model_path}; "
                                 f"give a token the file has")
            return given
        for token in candidates:
            if self.tk.token_to_id(token) is not None:
                return token
        raise ValueError(f"{self.model_path} has no {which.upper()} token (tried {', '.join(candidates)}); mixtrain "
                         f"needs both BOS and EOS: set tokenizer.{which}_token=<a token of its vocabulary>")

    def encode_documents(self, docs: list[str], num_threads: int = 2) -> list[np.ndarray]:
        # encode_batch parallelises in Rust (TOKENIZERS_PARALLELISM); num_threads is SentencePiece's knob
        encodings = self.tk.encode_batch(list(docs), add_special_tokens=False)
        return [np.asarray([self.bos_id, *e.ids, self.eos_id], dtype=np.int32) for e in encodings]

    def decode(self, ids) -> str:
        return self.tk.decode([int(i) for i in ids if int(i) not in (self.bos_id, self.eos_id)],
                              skip_special_tokens=False)

    def __getstate__(self) -> dict:
        return {"model_path": str(self.model_path), "bos_token": self.bos_token, "eos_token": self.eos_token}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["model_path"], state["bos_token"], state["eos_token"])


def open_tokenizer(path: str | os.PathLike, bos_token: str | None = None,
                   eos_token: str | None = None) -> Tokenizer | HFTokenizer:
    """The tokenizer stored in `path`: a SentencePiece `.model` or an HF `tokenizer.json`.

    `bos_token`/`eos_token` name the HF tokenizer's special tokens (ignored for SentencePiece,
    whose ids are in the model).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"tokenizer file {path} does not exist (a SentencePiece .model or an HF tokenizer.json)")
    if path.suffix == ".json":
        return HFTokenizer(path, bos_token=bos_token, eos_token=eos_token)
    if path.suffix == ".model":
        return Tokenizer(path)
    with open(path, "rb") as f:  # no telling suffix: an HF tokenizer.json starts with '{'
        head = f.read(64).lstrip()
    if head.startswith(b"{"):
        return HFTokenizer(path, bos_token=bos_token, eos_token=eos_token)
    return Tokenizer(path)


def file_hash(path: str | os.PathLike) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]
