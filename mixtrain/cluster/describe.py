"""What each cluster is: most distinctive terms, most typical documents, sizes, a 2-D plot, report.md.

Place in the flow: cluster/write.py (texts of the sampled and the typical documents) -> **describe.py**
-> names (merge.py) and OUT/report.md + OUT/report.png.
Distinctive terms: per cluster, the terms with the largest contribution p_c log(p_c / p_rest) to the
KL divergence between the share of the cluster's sampled documents holding the term (p_c) and that
of all other clusters' (p_rest): frequent in the cluster, rare elsewhere. Typical documents: those
closest to their k-means centroid.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def distinctive_terms(texts: list[str], groups: np.ndarray, num_groups: int, top: int = 8) -> list[list[str]]:
    """For each group 0..num_groups-1, its `top` most distinctive terms (empty list for a group without text)."""
    from sklearn.feature_extraction.text import CountVectorizer

    if not texts:
        return [[] for _ in range(num_groups)]
    vec = CountVectorizer(token_pattern=r"(?u)\b[^\W\d_][^\W\d]+\b", lowercase=True, binary=True,
                          max_features=50_000, min_df=1)
    try:
        counts = vec.fit_transform([t[:4000] for t in texts]).tocsc()
    except ValueError:  # no term at all (e.g. only numbers)
        return [[] for _ in range(num_groups)]
    vocab = np.asarray(vec.get_feature_names_out())
    out = []
    for g in range(num_groups):
        inside = groups == g
        n_in, n_out = int(inside.sum()), int((~inside).sum())
        if n_in == 0:
            out.append([])
            continue
        df_in = np.asarray(counts[np.flatnonzero(inside)].sum(axis=0)).ravel()
        df_out = np.asarray(counts.sum(axis=0)).ravel() - df_in
        p_in, p_out = (df_in + 0.5) / (n_in + 1), (df_out + 0.5) / (n_out + 1)
        score = np.where(df_in >= min(2, n_in), p_in * np.log(p_in / p_out), -np.inf)
        best = np.argsort(-score, kind="stable")[:top]
        out.append([str(vocab[i]) for i in best if np.isfinite(score[i]) and score[i] > 0])
    return out


def plot_2d(vectors: np.ndarray, groups: np.ndarray, names: list[str], path: Path, seed: int) -> None:
    """PCA of (a sample of) the document vectors, coloured by merged cluster; pruned documents grey."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.decomposition import PCA

    xy = PCA(n_components=2, random_state=seed).fit_transform(np.asarray(vectors, dtype=np.float64))
    fig, ax = plt.subplots(figsize=(8, 6))
    pruned = groups < 0
    ax.scatter(xy[pruned, 0], xy[pruned, 1], s=4, c="lightgrey", label="pruned")
    cmap = plt.get_cmap("tab20")
    for g, name in enumerate(names):
        sel = groups == g
        ax.scatter(xy[sel, 0], xy[sel, 1], s=4, color=cmap(g % 20), label=name if g < 20 else None)
    ax.set_title("documents by cluster (PCA of the embeddings)")
    ax.legend(markerscale=3, fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(path: Path, *, names: list[str], sizes: list[int], terms: list[list[str]],
                 typical: list[list[str]], quality: list[float] | None, pruned: list[tuple[int, int, float]],
                 settings: dict, skipped: dict[str, int]) -> None:
    total = max(sum(sizes), 1)
    lines = ["# Clusters", "", f"Settings: `{settings}`", "",
             "| cluster | documents | share | " + ("mean quality | " if quality else "") + "distinctive terms | typical document |",
             "|---|---:|---:|" + ("---:|" if quality else "") + "---|---|"]
    for i, name in enumerate(names):
        doc = (typical[i][0] if typical[i] else "").replace("\n", " ").replace("|", "\\|")[:100]
        q = f"{quality[i]:.3g} | " if quality else ""
        lines.append(f"| {name} | {sizes[i]:,} | {sizes[i] / total:.1%} | {q}{', '.join(terms[i])} | {doc} |")
    if pruned:
        lines += ["", "Pruned k-means clusters (mean quality below the threshold):", "",
                  "| k-means cluster | documents | mean quality |", "|---:|---:|---:|"]
        lines += [f"| {k} | {n:,} | {q:.3g} |" for k, n, q in pruned]
    lines += ["", f"Skipped documents (not embedded, listed in the embeddings' skipped.csv): {skipped or 'none'}", "",
              "![clusters](report.png)", ""]
    path.write_text("\n".join(lines))
