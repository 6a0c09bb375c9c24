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

from mixtrain.store.runfiles import atomic_write

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
    atomic_write(model_path, buffer.getvalue())
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
            if not isinstance(given, str):  # Hydra reads an unquoted [CLS] as a list
                raise ValueError(f"tokenizer.{which}_token={given!r} is not a string; quote it on the command line: "
                                 f"'tokenizer.{which}_token=\"{given[0] if isinstance(given, list) and given else given}\"'")
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


# SentencePiece piece types (sentencepiece_model.proto): only NORMAL pieces are ever matched in text
_NORMAL, _UNKNOWN, _CONTROL, _USER_DEFINED = 1, 2, 3, 4


def sentencepiece_to_hf_json(model_path: str | os.PathLike) -> str:
    """An HF tokenizer.json (string) that encodes exactly like the SentencePiece model at `model_path`.

    transformers' own conversion of a Llama tokenizer.model (Metaspace pre-tokenizer) adds the
    "▁" prefix only when the text does not already start with a space, so text with leading
    whitespace got other ids than mixtrain trained on. This is the legacy Llama layout instead:
    normalizer Prepend("▁") + Replace(" ", "▁") (SentencePiece's dummy prefix, always), no
    pre-tokenizer, the model's own pieces and byte fallback; BOS added by the post-processor.

    SentencePiece never matches control (<s>, </s>), unknown (<unk>) or byte (<0x41>) pieces in
    text: literal "</s>" in a document is encoded as the characters it is. So those pieces are no
    added tokens here (added tokens are cut out of the text before the model sees it) and no BPE
    merge produces them; export.py also sets `split_special_tokens` for transformers, which
    registers the special tokens named in tokenizer_config.json. Unigram models keep one
    difference: HF's Unigram matches every piece's text, so a literal piece name ("<s>",
    "<0x41>") in the text can encode differently; BPE (mixtrain's default) is exact.
    """
    from sentencepiece import sentencepiece_model_pb2
    from tokenizers import Tokenizer as _HFTok, decoders, models, normalizers, processors

    proto = sentencepiece_model_pb2.ModelProto()
    proto.ParseFromString(Path(model_path).read_bytes())
    spec, norm = proto.trainer_spec, proto.normalizer_spec
    if norm.name not in ("identity", "") or norm.remove_extra_whitespaces or spec.treat_whitespace_as_suffix:
        raise ValueError(f"{model_path}: only SentencePiece models with normalization 'identity', whitespace kept "
                         f"and prefix whitespace convert exactly (this one: normalization={norm.name!r}, "
                         f"remove_extra_whitespaces={norm.remove_extra_whitespaces}); train it with mixtrain.prepare")
    pieces = [(p.piece, p.score, p.type) for p in proto.pieces]
    user_defined = [piece for piece, _, kind in pieces if kind == _USER_DEFINED]
    if user_defined:
        raise ValueError(f"{model_path} has user-defined symbols {user_defined[:5]}, which this conversion does not "
                         "reproduce exactly; export with an SPM model trained by mixtrain.prepare")
    unk_id = int(spec.unk_id)
    if spec.model_type == 2:  # BPE: merges ranked by the merged piece's id (= score order), as SentencePiece does
        vocab = {piece: i for i, (piece, _, _) in enumerate(pieces)}
        normal = {piece for piece, _, kind in pieces if kind == _NORMAL}
        merges = []
        for merged, rank in vocab.items():
            if merged not in normal:  # no merge may build "<s>" or "<0x41>" out of text
                continue
            local = [(merged[:j], merged[j:]) for j in range(1, len(merged)) if merged[:j] in normal and merged[j:] in normal]
            merges += sorted(((left, right, rank) for left, right in local), key=lambda m: (vocab[m[0]], vocab[m[1]]))
        merges.sort(key=lambda m: (m[2], len(m[0]), len(m[1])))
        model = models.BPE(vocab=vocab, merges=[(a, b) for a, b, _ in merges], unk_token=pieces[unk_id][0],
                           fuse_unk=True, byte_fallback=bool(spec.byte_fallback))
    elif spec.model_type == 1:  # unigram
        model = models.Unigram([(piece, score) for piece, score, _ in pieces], unk_id=unk_id,
                               byte_fallback=bool(spec.byte_fallback))
    else:
        raise ValueError(f"{model_path}: SentencePiece model_type {spec.model_type} cannot be exported; use bpe or unigram")
    tk = _HFTok(model)
    steps = [normalizers.Prepend("▁")] if norm.add_dummy_prefix else []
    tk.normalizer = normalizers.Sequence(steps + [normalizers.Replace(" ", "▁")])
    tk.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()]
                                   + ([decoders.Strip(" ", 1, 0)] if norm.add_dummy_prefix else []))
    bos = pieces[spec.bos_id][0]
    tk.post_processor = processors.TemplateProcessing(single=f"{bos} $A", pair=f"{bos} $A {bos} $B",
                                                      special_tokens=[(bos, int(spec.bos_id))])
    return tk.to_str()


def open_data_tokenizer(data_dir: str | os.PathLike) -> Tokenizer | HFTokenizer:
    """The tokenizer a prepared data_dir was encoded with (its manifest's "tokenizer", bos_id, eos_id)."""
    import json

    data_dir = Path(data_dir)
    manifest_path = data_dir / "manifest.json"
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, ValueError) as e:
        raise FileNotFoundError(f"{manifest_path} is missing or unreadable ({e}); run mixtrain.prepare first") from None
    path = data_dir / manifest.get("tokenizer", "tokenizer.model")
    bos_token = eos_token = None
    if path.suffix == ".json" and path.is_file():  # the special tokens prepare chose, by their ids
        from tokenizers import Tokenizer as _HFTok

        tk = _HFTok.from_file(str(path))
        bos_token, eos_token = tk.id_to_token(int(manifest["bos_id"])), tk.id_to_token(int(manifest["eos_id"]))
    tok = open_tokenizer(path, bos_token=bos_token, eos_token=eos_token)
    if (tok.vocab_size, tok.bos_id, tok.eos_id) != (manifest["vocab_size"], manifest["bos_id"], manifest["eos_id"]):
        raise ValueError(f"{path} (vocab {tok.vocab_size}, bos {tok.bos_id}, eos {tok.eos_id}) is not the tokenizer "
                         f"{manifest_path} records (vocab {manifest['vocab_size']}, bos {manifest['bos_id']}, "
                         f"eos {manifest['eos_id']}); re-run mixtrain.prepare")
    return tok


def file_hash(path: str | os.PathLike) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]
