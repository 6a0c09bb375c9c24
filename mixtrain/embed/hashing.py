"""The default embedder: hashed word and character n-grams -> TF-IDF -> TruncatedSVD (scikit-learn).

Place in the flow: embed/pipeline.py fits it on a sample of the corpus and transforms every
document; embed/store.py saves the fitted object (joblib), so new text (an added domain, a target
folder) is embedded by the very same model, without refitting. Works offline on any machine.

Why hashing: the vocabulary of a crawl is unbounded; a HashingVectorizer needs no vocabulary pass
and no memory for one, and is stateless, so transforming runs in any number of processes. The
IDF and the SVD basis are the only fitted state, learned on the sample (`fit_docs` documents).
Only the hash buckets that occur in at least `min_df` sample documents are kept (`active`): the
SVD basis is then (dim, active) instead of (dim, 2 x 2^18) - 50x smaller on a 50k-document sample,
and 10x faster to fit; a bucket seen once in the sample cannot shape a 64-d basis anyway.
Vectors are L2-normalised, so k-means' Euclidean distance is the cosine distance CLIMB clusters by.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class HashingSettings:
    dim: int = 64                    # SVD components (the vector size)
    n_features: int = 2 ** 18        # hash buckets per analyzer (word, char)
    word_ngrams: tuple[int, int] = (1, 2)
    char_ngrams: tuple[int, int] = (3, 5)
    max_chars: int = 4000            # characters of a document read (CLIMB embeds 512 tokens)
    min_df: int = 2                  # hashed n-grams in fewer sample documents are left out of the basis
    seed: int = 0                    # TruncatedSVD's randomised solver

    def describe(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


class HashingEmbedder:
    """fit(texts) on a sample, then transform(texts) -> float32 (n, dim), rows of unit length."""

    name = "hashing"

    def __init__(self, settings: HashingSettings = HashingSettings()):
        from sklearn.feature_extraction.text import HashingVectorizer, TfidfTransformer
        from sklearn.decomposition import TruncatedSVD

        self.settings = settings
        common = dict(n_features=settings.n_features, alternate_sign=False, norm=None, lowercase=True)
        # token_pattern keeps identifiers and single symbols-free words: code and prose alike
        self.words = HashingVectorizer(analyzer="word", ngram_range=tuple(settings.word_ngrams),
                                       token_pattern=r"(?u)\b\w\w+\b", **common)
        self.chars = HashingVectorizer(analyzer="char_wb", ngram_range=tuple(settings.char_ngrams), **common)
        self.tfidf = TfidfTransformer(sublinear_tf=True)
        self.svd = TruncatedSVD(n_components=settings.dim, random_state=settings.seed, algorithm="randomized")

    def _counts(self, texts: Sequence[str]):
        from scipy.sparse import hstack

        cut = [t[: self.settings.max_chars] for t in texts]
        return hstack([self.words.transform(cut), self.chars.transform(cut)], format="csr")

    def fit(self, texts: Sequence[str]) -> "HashingEmbedder":
        from mixtrain.errors import DataError

        if len(texts) <= self.settings.dim:
            raise DataError(f"the hashing embedder needs more than dim={self.settings.dim} documents to fit "
                            f"(got {len(texts)}); add documents or lower --dim")
        counts = self._counts(texts)
        df = np.bincount(counts.indices, minlength=counts.shape[1])  # csr: one index per (doc, bucket)
        self.active = np.flatnonzero(df >= self.settings.min_df)
        if len(self.active) <= self.settings.dim:
            self.active = np.flatnonzero(df >= 1)
        self.svd.fit(self.tfidf.fit_transform(counts[:, self.active]))
        return self

    def transform(self, texts: Sequence[str]) -> np.ndarray:
        from sklearn.preprocessing import normalize

        vectors = self.svd.transform(self.tfidf.transform(self._counts(texts)[:, self.active]))
        return normalize(vectors).astype(np.float32)

    def describe(self) -> dict:
        return {"embedder": self.name, **self.settings.describe()}
