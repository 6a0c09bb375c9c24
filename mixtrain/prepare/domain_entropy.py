"""Per-domain entropies of the tokenized training shards and the BiMix weights they give.

Place in the flow: prepare/shards.py wrote `DIR/<domain>/train/` -> **domain_entropy.py** -> mixing/entropy_rule.py
(training-free weights) and proxy.py (entropy mixtures that seed a proxy sweep).

Measures (natural logarithms, i.e. nats): the four entropy proxies of BiMix (Ge et al., "BiMix:
Bivariate Data Mixing Law for Language Model Pretraining", arXiv:2405.14908), made exact here
(the definitions below are mixtrain's own, and they are what tests/prepare/test_entropy.py checks):
* se  H(X): Shannon entropy of the unigram distribution.
* je  H(X_t, X_t+1): joint entropy of adjacent pairs *inside a document* (pairs that straddle
      an end-of-document token are not counted: they say nothing about the domain's language).
* ce  H(X_t+1 | X_t) = je - se_pairs, where se_pairs is the entropy of the left token of the
      counted pairs (so ce is an exact conditional entropy of the plug-in joint, >= 0).
* vne von Neumann entropy -sum λ log λ of rho = (1/n) Σ_d φ(d) φ(d)ᵀ over documents d, φ a
      unit-norm signed feature-hashed bag of tokens (no model download). Documents are the
      spans between EOS tokens, cut into windows of at most `max_doc_tokens` so that one long
      file does not count as one point; rho is dim x dim, so S ≤ log(dim).
Equal-size samples (why: a plug-in estimate is biased low by about (m-1)/(2N), so domains
sampled at different sizes differ by their bias, which can be as large as the spread across
domains): every domain of a table is measured on the same number of tokens, N = min(sample_tokens,
smallest domain's train tokens), and vne on the same number of document windows (the fewest any
domain has in its N-token sample; vne's bias depends on the number of points in rho, not on tokens).
Both numbers are reported (`num_tokens`, `vne_windows`) and are part of the cache key, so the
measures of a domain depend on which domains it is compared with.
Bias correction (`bias_correction`, default miller_madow): se, je get + (m-1)/(2N) (Miller-Madow,
m = distinct symbols or pairs observed, N = tokens or pairs), so ce = je - se_pairs gets
+ (m_pairs - m_left)/(2N). It removes the first-order bias of the plug-in estimate; with many
unseen symbols (N not >> m) the estimate is still low. `none`: plug-in. vne is not corrected.
All counts are vectorised: unigram `bincount`; pairs as codes a*V+b (uint32 up to V=65,535,
which numpy sorts with SIMD), counted with a dense `bincount` when V² is small and a sort
otherwise; never a Python loop per token (bench/entropy.py measures tokens/s).

Reading: the chunk files litdata wrote with TokensLoader are read directly with numpy
(header of (2 + items) uint32, then the token array), in a seeded order of whole chunks until
`sample_tokens` are collected, so documents stay intact and no torch is needed.

`python -m mixtrain.prepare.entropy_cli data_dir=DIR` prints all four measures and the weights each gives,
and caches them in `DIR/<domain>/stats.json` under "entropy" (keyed by every setting above,
the equal sample sizes and ENTROPY_VERSION, so caches with older semantics are recomputed).
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mixtrain.prepare.config import EntropyConfig

MEASURES = ("se", "ce", "je", "vne")
NORMALIZATIONS = ("proportional", "softmax")
INT32_TOKENS_FORMAT = "no_header_tensor:16"  # litdata's name for a torch.int32 tensor item (shards.py writes these)
_DENSE_PAIR_LIMIT = 1 << 16  # V² up to 65k possible pairs: a dense bincount beats sorting
BIAS_CORRECTIONS = ("miller_madow", "none")
ENTROPY_VERSION = 2  # 2: equal-size samples + bias correction (1: plug-in on per-domain sample sizes)


# ------------------------------------------------------------------------------ pure math
def _entropy_from_counts(counts: np.ndarray, bias_correction: str = "none") -> float:
    counts = counts[counts > 0].astype(np.float64)
    total = counts.sum()
    if total <= 0:
        return 0.0
    plug_in = float(math.log(total) - (counts * np.log(counts)).sum() / total)
    if bias_correction == "miller_madow":
        return plug_in + (counts.size - 1) / (2.0 * total)
    if bias_correction != "none":
        raise ValueError(f"entropy bias_correction must be one of {BIAS_CORRECTIONS}, got {bias_correction!r}")
    return plug_in


def _code_dtype(vocab_size: int) -> np.dtype:
    # uint32 codes sort ~6x faster than int64 (SIMD sort) and cover vocabularies up to 65,535
    return np.dtype(np.uint32) if vocab_size <= 0xFFFF else np.dtype(np.int64)


def document_pairs(tokens: np.ndarray, vocab_size: int, eos_id: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(left, right) tokens of adjacent pairs, without pairs whose left token ends a document."""
    t = np.asarray(tokens).astype(_code_dtype(vocab_size), copy=False)
    left, right = t[:-1], t[1:]
    if eos_id is not None:
        keep = left != eos_id
        left, right = left[keep], right[keep]
    return left, right


def _pair_counts(codes: np.ndarray, vocab_size: int) -> np.ndarray:
    if codes.size == 0:
        return np.zeros(0, dtype=np.int64)
    if vocab_size * vocab_size <= max(_DENSE_PAIR_LIMIT, codes.size):
        return np.bincount(codes)  # few possible pairs: a dense table is cheapest
    s = np.sort(codes)
    edges = np.flatnonzero(s[1:] != s[:-1]) + 1
    return np.diff(np.concatenate([[0], edges, [s.size]]))


def token_entropies(
    tokens: np.ndarray, vocab_size: int, eos_id: int | None = None, bias_correction: str = "none"
) -> dict[str, float]:
    """se, je, ce of a token stream (nats). `eos_id` marks document ends (pairs across are dropped).

    bias_correction: none (plug-in, the default of this primitive) or miller_madow (see the module doc).
    """
    t = np.asarray(tokens)
    if t.ndim != 1 or t.size < 2:
        raise ValueError(f"need a 1-D stream of at least 2 tokens, got shape {t.shape}")
    if t.min() < 0 or t.max() >= vocab_size:
        raise ValueError(f"token ids must lie in [0, {vocab_size}), got [{t.min()}, {t.max()}]")
    se = _entropy_from_counts(np.bincount(t, minlength=vocab_size), bias_correction)
    left, right = document_pairs(t, vocab_size, eos_id)
    if left.size == 0:
        raise ValueError("no adjacent pair inside a document: every token is an end-of-document token")
    je = _entropy_from_counts(_pair_counts(left * vocab_size + right, vocab_size), bias_correction)
    left_se = _entropy_from_counts(np.bincount(left, minlength=vocab_size), bias_correction)
    return {"se": se, "je": je, "ce": max(0.0, je - left_se)}


def document_spans(tokens: np.ndarray, eos_id: int | None, max_doc_tokens: int) -> tuple[np.ndarray, np.ndarray]:
    """[start, end) of every document window: spans ending at EOS, cut to at most max_doc_tokens."""
    n = len(tokens)
    ends = np.flatnonzero(np.asarray(tokens) == eos_id) + 1 if eos_id is not None else np.zeros(0, dtype=np.int64)
    if ends.size == 0 or ends[-1] != n:
        ends = np.concatenate([ends, [n]])
    starts = np.concatenate([[0], ends[:-1]])
    lengths = ends - starts
    pieces = np.maximum(1, -(-lengths // max_doc_tokens))  # ceil
    win_start = np.repeat(starts, pieces) + max_doc_tokens * (
        np.arange(pieces.sum()) - np.repeat(np.cumsum(pieces) - pieces, pieces))
    win_end = np.minimum(win_start + max_doc_tokens, np.repeat(ends, pieces))
    keep = win_end > win_start
    return win_start[keep], win_end[keep]


def von_neumann_entropy(
    tokens: np.ndarray, vocab_size: int, eos_id: int | None = None, *, dim: int = 256,
    max_doc_tokens: int = 1024, seed: int = 0, ignore_ids: Sequence[int] = (), max_windows: int | None = None,
) -> float:
    """S(rho) of the hashed bag-of-tokens document embeddings (nats; 0 <= S <= log(dim)).

    max_windows: use only the first that many document windows (equal-size comparison across domains).
    """
    t = np.asarray(tokens, dtype=np.int64)
    starts, ends = document_spans(t, eos_id, max_doc_tokens)
    if max_windows is not None:
        starts, ends = starts[:max_windows], ends[:max_windows]
        t = t[: int(ends[-1])] if len(ends) else t[:0]
    doc_of = np.repeat(np.arange(len(starts)), ends - starts)
    rng = np.random.default_rng(seed)  # a fixed random hash: bucket and sign per token id
    bucket = rng.integers(0, dim, size=vocab_size)
    sign = rng.choice(np.array([-1.0, 1.0]), size=vocab_size)
    weight = sign[t]
    if ignore_ids:  # BOS/EOS carry no content
        weight = np.where(np.isin(t, np.asarray(ignore_ids)), 0.0, weight)
    phi = np.bincount(doc_of * dim + bucket[t], weights=weight, minlength=len(starts) * dim).reshape(len(starts), dim)
    norms = np.linalg.norm(phi, axis=1)
    phi = phi[norms > 0] / norms[norms > 0, None]
    if len(phi) == 0:
        raise ValueError("no document with content tokens: cannot compute the von Neumann entropy")
    rho = phi.T @ phi / len(phi)  # unit trace by construction
    lam = np.linalg.eigvalsh(rho)
    lam = lam[lam > 1e-12]
    return float(-(lam * np.log(lam)).sum())


def entropy_weights(
    values: Mapping[str, float], normalization: str = "proportional", temperature: float = 1.0
) -> dict[str, float]:
    """Weights from per-domain entropies: r_i ∝ H_i (proportional) or r_i ∝ exp(H_i / τ) (softmax)."""
    bad = {d: v for d, v in values.items() if not (isinstance(v, (int, float)) and math.isfinite(v))}
    if bad:
        raise ValueError(f"entropies must be finite numbers, got {bad}")
    if normalization == "proportional":
        if any(v < 0 for v in values.values()) or sum(values.values()) <= 0:
            raise ValueError(f"proportional weights need non-negative entropies with a positive sum, got {dict(values)}")
        total = sum(values.values())
        return {d: float(v) / total for d, v in values.items()}
    if normalization == "softmax":
        if not temperature > 0:
            raise ValueError(f"softmax temperature must be > 0, got {temperature}")
        h = np.array(list(values.values()), dtype=np.float64) / temperature
        e = np.exp(h - h.max())
        return dict(zip(values, (e / e.sum()).tolist()))
    raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {normalization!r}")


# ------------------------------------------------------------------------------ reading shards
def _chunk_tokens(train_dir: Path, chunk: Mapping[str, Any], dtype: np.dtype) -> np.ndarray:
    path = train_dir / chunk["filename"]
    header = (2 + int(chunk["chunk_size"])) * 4  # uint32 item count + (items + 1) offsets
    return np.fromfile(path, dtype=dtype, offset=header, count=int(chunk["dim"]))


def read_domain_tokens(train_dir: str | os.PathLike, sample_tokens: int | None = None, seed: int = 0) -> np.ndarray:
    """Tokens of a domain's train shards: all, or whole chunks in a seeded order until sample_tokens."""
    train_dir = Path(train_dir)
    index_path = train_dir / "index.json"
    try:
        index = json.loads(index_path.read_text())
        chunks = index["chunks"]
        fmt = index["config"]["data_format"]
    except FileNotFoundError:
        raise FileNotFoundError(f"no shards at {index_path}; run `python -m mixtrain.prepare` for this data_dir") from None
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(f"corrupt litdata index {index_path} ({e}); delete {train_dir} and re-run prepare") from None
    if fmt != [INT32_TOKENS_FORMAT]:
        # the chunk files are read as raw int32 below: any other layout would be read as garbage
        raise ValueError(f"{index_path}: data_format {fmt}, expected [{INT32_TOKENS_FORMAT!r}] (int32 token "
                         f"tensors as written by `python -m mixtrain.prepare`); re-prepare {train_dir}")
    order = np.random.default_rng(seed).permutation(len(chunks)) if sample_tokens else np.arange(len(chunks))
    parts, total = [], 0
    for i in order:
        arr = _chunk_tokens(train_dir, chunks[int(i)], np.dtype(np.int32))
        if len(arr) != int(chunks[int(i)]["dim"]):
            raise ValueError(f"truncated chunk {train_dir / chunks[int(i)]['filename']}; delete {train_dir} and re-run prepare")
        parts.append(arr)
        total += len(arr)
        if sample_tokens and total >= sample_tokens:
            break
    tokens = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int32)
    return tokens[:sample_tokens] if sample_tokens else tokens


def domain_entropies(
    train_dir: str | os.PathLike, vocab_size: int, *, eos_id: int | None, bos_id: int | None = None,
    sample_tokens: int | None = 2_000_000, seed: int = 0, vne_dim: int = 256, max_doc_tokens: int = 1024,
    bias_correction: str = "miller_madow", vne_windows: int | None = None,
) -> dict[str, float]:
    """All four measures for one domain, plus the tokens and vne windows used and the tokens/s of se/je/ce."""
    tokens = read_domain_tokens(train_dir, sample_tokens, seed)
    t0 = time.perf_counter()
    out = token_entropies(tokens, vocab_size, eos_id, bias_correction)
    counted = time.perf_counter() - t0
    ignore = [i for i in (bos_id, eos_id) if i is not None]
    out["vne"] = von_neumann_entropy(tokens, vocab_size, eos_id, dim=vne_dim, max_doc_tokens=max_doc_tokens,
                                     seed=seed, ignore_ids=ignore, max_windows=vne_windows)
    out["num_tokens"] = int(len(tokens))
    available = len(document_spans(tokens, eos_id, max_doc_tokens)[0])
    out["vne_windows"] = int(available if vne_windows is None else min(vne_windows, available))
    out["tokens_per_s"] = float(len(tokens) / max(counted, 1e-9))
    return out


def equal_sample_tokens(num_train_tokens: Mapping[str, int], sample_tokens: int | None) -> int:
    """Tokens measured in every domain: min(sample_tokens, smallest domain's size); None: the smallest size."""
    smallest = min(int(n) for n in num_train_tokens.values())
    return smallest if sample_tokens is None else min(int(sample_tokens), smallest)


def load_or_compute_entropies(
    data_dir: str | os.PathLike, domains: Sequence[str] | None = None, *, sample_tokens: int | None = 2_000_000,
    seed: int = 0, write: bool = True, vne_dim: int = 256, max_doc_tokens: int = 1024,
    bias_correction: str = "miller_madow", progress: bool = False,
) -> dict[str, dict[str, float]]:
    """{domain: {se, ce, je, vne, num_tokens, vne_windows}}, equal-size samples, cached in stats.json.

    Every domain is measured on `equal_sample_tokens` tokens and vne on the fewest windows any
    domain has in that sample (module doc); the cache entry is keyed by all of it.
    """
    from mixtrain.store.datadir import read_manifest, read_stats, write_json_atomic

    if bias_correction not in BIAS_CORRECTIONS:
        raise ValueError(f"entropy bias_correction must be one of {BIAS_CORRECTIONS}, got {bias_correction!r}")
    data_dir = Path(data_dir)
    manifest = read_manifest(data_dir)
    domains = list(domains) if domains is not None else list(manifest["domains"])
    vocab_size, eos_id = int(manifest["vocab_size"]), manifest.get("eos_id")
    stats = {d: read_stats(data_dir, d) for d in domains}
    num_tokens = equal_sample_tokens({d: stats[d]["num_train_tokens"] for d in domains}, sample_tokens)
    sample_key = {"version": ENTROPY_VERSION, "sample_tokens": sample_tokens, "num_tokens": num_tokens,
                  "seed": seed, "max_doc_tokens": max_doc_tokens}
    # windows of every domain's N-token sample (cached: counting needs a read of the sample)
    windows: dict[str, int] = {}
    for d in domains:
        cached = stats[d].get("entropy")
        if isinstance(cached, dict) and cached.get("sample") == sample_key and "sample_windows" in cached:
            windows[d] = int(cached["sample_windows"])
        else:
            tokens = read_domain_tokens(data_dir / d / "train", num_tokens, seed)
            windows[d] = int(len(document_spans(tokens, eos_id, max_doc_tokens)[0]))
    vne_windows = min(windows.values())
    key = {**sample_key, "vne_windows": vne_windows, "vne_dim": vne_dim, "bias_correction": bias_correction}
    result: dict[str, dict[str, float]] = {}
    iterator: Any = domains
    if progress:
        from tqdm import tqdm

        iterator = tqdm(domains, desc="entropy", unit="domain")
    for d in iterator:
        cached = stats[d].get("entropy")
        if isinstance(cached, dict) and cached.get("settings") == key and all(m in cached for m in MEASURES):
            result[d] = {m: float(cached[m]) for m in (*MEASURES, "num_tokens", "vne_windows") if m in cached}
            continue
        values = domain_entropies(data_dir / d / "train", vocab_size, eos_id=eos_id, bos_id=manifest.get("bos_id"),
                                  sample_tokens=num_tokens, seed=seed, vne_dim=vne_dim,
                                  max_doc_tokens=max_doc_tokens, bias_correction=bias_correction,
                                  vne_windows=vne_windows)
        result[d] = values
        if write:
            stats[d]["entropy"] = {**{k: values[k] for k in (*MEASURES, "num_tokens", "vne_windows")},
                                   "sample_windows": windows[d], "sample": sample_key, "settings": key}
            write_json_atomic(data_dir / d / "stats.json", stats[d])
    return result


# ------------------------------------------------------------------------------ CLI
def format_table(table: Mapping[str, Mapping[str, float]], temperature: float = 1.0) -> str:
    domains = list(table)
    lines = ["| domain | tokens | vne windows | " + " | ".join(MEASURES) + " | " +
             " | ".join(f"w({m},prop)" for m in MEASURES) + " | " +
             " | ".join(f"w({m},softmax τ={temperature:g})" for m in MEASURES) + " |",
             "|---" * (3 + 3 * len(MEASURES)) + "|"]
    weights = {(m, n): entropy_weights({d: table[d][m] for d in domains}, n, temperature)
               for m in MEASURES for n in NORMALIZATIONS}
    for d in domains:
        cells = [d, f"{int(table[d].get('num_tokens', 0)):,}", f"{int(table[d].get('vne_windows', 0)):,}"]
        cells += [f"{table[d][m]:.3f}" for m in MEASURES]
        cells += [f"{weights[(m, 'proportional')][d]:.3f}" for m in MEASURES]
        cells += [f"{weights[(m, 'softmax')][d]:.3f}" for m in MEASURES]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def run_entropy(config: EntropyConfig) -> None:
    """Measure (or read the cache of) every domain's entropies and print them with the weights they give."""
    table = load_or_compute_entropies(
        config.data_dir, config.domains, sample_tokens=config.sample_tokens, seed=config.seed, write=config.write,
        vne_dim=config.vne_dim, max_doc_tokens=config.max_doc_tokens, bias_correction=config.bias_correction,
        progress=True,
    )
    first = next(iter(table.values()))
    print(f"equal-size samples: {int(first['num_tokens']):,} tokens per domain (min of sample_tokens="
          f"{config.sample_tokens} and the smallest domain), vne on {int(first['vne_windows']):,} document "
          f"windows per domain; bias correction: {config.bias_correction}")
    print(format_table(table, config.temperature))
