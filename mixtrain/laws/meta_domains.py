"""Domain2Vec's law feature ("+RegMix"): a law fitted on meta-domain mixtures V r instead of domain mixtures r.

Place in the flow: domain vectors (mixing/domain2vec.py's v(D), the share of a domain's documents in
each meta-domain; written as V.json by `mixtrain fit-meta --vectors-from E`) + an observation table (laws/table.py) -> **meta_domains.py** -> any registered law (law_registry.py),
fitted in meta-domain space -> scores mixtures of *other* domains (a domain added later, or a
different domain set) through their vectors. Pure numpy.

    p(r) = V^T r        V: [k, M], row i = domain i's vector on the simplex of M meta-domains
    L(r) ~ law(p(r))    the law's "training domains" are the meta-domains

Domain2Vec (arXiv 2506.10952, "+RegMix") fits RegMix's LightGBM on V r; here any registered law fits
(fitting/meta_fit.py defaults to ridge; both measured in bench/domain2vec_law.py, RESULTS.md). Why it can help: runs on
domain set A teach the law how the loss depends on the meta-domain mixture, which is shared by set B;
why it can fail: a domain is more than its meta-domain histogram (two domains with equal vectors are
one point to the law).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mixtrain.errors import ConfigError
from mixtrain.laws.table import ObservationTable, make_table


def read_domain_vectors(path: str | Path) -> dict[str, np.ndarray]:
    """{domain: vector} from a JSON file {domain: [shares...]} (every vector the same length, on the simplex)."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ConfigError(f"--domain-vectors {path}: cannot read it as JSON ({e}); write {{domain: [share per "
                          "meta-domain, ...]}} (a domain2vec run's `vectors`)") from None
    if not isinstance(raw, Mapping) or not raw:
        raise ConfigError(f"--domain-vectors {path}: expected a non-empty {{domain: [shares...]}} mapping")
    return check_vectors({str(d): np.asarray(v, dtype=np.float64) for d, v in raw.items()}, str(path))


def check_vectors(vectors: Mapping[str, np.ndarray], where: str) -> dict[str, np.ndarray]:
    sizes = {len(v) for v in vectors.values()}
    if len(sizes) != 1:
        raise ConfigError(f"{where}: domain vectors have different lengths {sorted(sizes)}; give every domain a "
                          "share per meta-domain of the same meta-domain set")
    out = {}
    for d, v in vectors.items():
        if v.ndim != 1 or not np.all(np.isfinite(v)) or np.any(v < 0) or v.sum() <= 0:
            raise ConfigError(f"{where}: domain {d!r} has no valid vector (finite, >= 0, not all 0): {v.tolist()[:8]}")
        out[d] = v / v.sum()
    return out


def vector_matrix(domains: Sequence[str], vectors: Mapping[str, np.ndarray], where: str) -> np.ndarray:
    missing = [d for d in domains if d not in vectors]
    if missing:
        raise ConfigError(f"{where}: no domain vector for {missing} (vectors for {sorted(vectors)}); add them to "
                          "the --domain-vectors file (embed the domain with the same embedder and meta-domains)")
    return np.stack([np.asarray(vectors[d], dtype=np.float64) for d in domains])


def meta_names(m: int) -> tuple[str, ...]:
    return tuple(f"meta{j:03d}" for j in range(m))


def meta_table(table: ObservationTable, vectors: Mapping[str, np.ndarray]) -> ObservationTable:
    """The same observations with each run's mixture r replaced by its meta-domain mixture V^T r."""
    v = vector_matrix(table.train_domains, vectors, table.source)
    return make_table(meta_names(v.shape[1]), table.eval_domains, table.runs, table.steps, table.W @ v, table.L,
                      table.tokens, source=f"{table.source} (meta-domains)", num_params=table.num_params)


class MetaDomainLaw:
    """A registered law fitted on meta-domain mixtures; predicts for mixtures of any domains with vectors."""

    def __init__(self, law: str = "ridge", vectors: Mapping[str, np.ndarray] | None = None, **law_config: Any):
        from mixtrain.laws.law_registry import make_law

        self.vectors = check_vectors(dict(vectors or {}), "domain vectors") if vectors else {}
        self.inner = make_law(law, **law_config)

    def fit(self, table: ObservationTable, **fit_args: Any) -> "MetaDomainLaw":
        self.inner.fit(meta_table(table, self.vectors), **fit_args)
        return self

    def predict(self, weights, domains: Sequence[str], steps) -> np.ndarray:
        """Losses [n, m] for mixtures `weights` [n, len(domains)] over `domains` (any with a vector)."""
        v = vector_matrix(domains, self.vectors, "MetaDomainLaw.predict")
        return self.inner.predict(np.atleast_2d(np.asarray(weights, dtype=np.float64)) @ v, steps)
