"""`embed_corpus`: every document of RAW -> one vector, written as an embeddings folder E.

Place in the flow: RAW -> documents.py -> **pipeline.py** (sample, fit the embedder once, transform
every document in batches on `num_workers` processes) -> store.py (E) -> cluster/, mixing/.

The fitting sample is a seeded reservoir sample over the whole corpus (not its first files, which
would be one domain), so the fitted model is the same for any file order of equal content and seed.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from mixtrain.embed.documents import Skipped, corpus_files, domain_of, iter_corpus
from mixtrain.embed.embedders import make_embedder
from mixtrain.embed.store import load_embedder, read_manifest, write_embeddings

_WORKER_EMBEDDER: Any = None


def _no_text(root, skipped: Skipped):
    from mixtrain.errors import DataError

    return DataError(f"{root}: no document with text ({len(skipped.rows)} skipped: {skipped.counts()}, e.g. "
                     f"{skipped.rows[:1]}); put UTF-8 text in the files")


def reservoir_sample(root, files, *, fit_docs: int, seed: int, text_field: str, txt_mode: str) -> list[str]:
    """Algorithm R over the corpus: `fit_docs` documents, each equally likely, fixed by `seed`."""
    rng = np.random.default_rng(seed)
    sample: list[str] = []
    seen = 0
    skipped = Skipped()
    for _, _, text, _ in tqdm(iter_corpus(root, skipped, text_field=text_field, txt_mode=txt_mode, files=files),
                              desc="embed: sampling", unit=" docs", mininterval=2):
        if len(sample) < fit_docs:
            sample.append(text)
        else:
            j = int(rng.integers(0, seen + 1))
            if j < fit_docs:
                sample[j] = text
        seen += 1
    if not sample:
        raise _no_text(root, skipped)
    return sample


def _batches(docs: Iterator, batch_size: int) -> Iterator[tuple[list, list[str]]]:
    meta, texts = [], []
    for source, doc, text, extra in docs:
        meta.append((source, doc, len(text), extra))
        texts.append(text)
        if len(texts) == batch_size:
            yield meta, texts
            meta, texts = [], []
    if texts:
        yield meta, texts


def _init_worker(embedder) -> None:
    global _WORKER_EMBEDDER
    _WORKER_EMBEDDER = embedder


def _transform(item):
    meta, texts = item
    return meta, _WORKER_EMBEDDER.transform(texts)


def _embed_all(embedder, docs: Iterator, *, batch_size: int, num_workers: int) -> tuple[list, list[np.ndarray]]:
    metas, chunks = [], []
    progress = tqdm(desc="embed: vectors", unit=" docs", mininterval=2)
    if num_workers > 1:
        import multiprocessing as mp

        with mp.get_context("fork").Pool(num_workers, _init_worker, (embedder,)) as pool:
            for meta, vectors in pool.imap(_transform, _batches(docs, batch_size)):  # imap keeps the order
                metas.extend(meta), chunks.append(vectors), progress.update(len(meta))
    else:
        _init_worker(embedder)
        for item in _batches(docs, batch_size):
            meta, vectors = _transform(item)
            metas.extend(meta), chunks.append(vectors), progress.update(len(meta))
    progress.close()
    return metas, chunks


def doc_table(metas: list, fields: tuple[str, ...]) -> dict[str, Any]:
    """E/docs.parquet's columns for the documents `metas` (as _embed_all returns them), in order."""
    table = {"source": [m[0] for m in metas], "doc": np.array([m[1] for m in metas], dtype=np.int64),
             "domain": [domain_of(m[0]) for m in metas], "num_chars": np.array([m[2] for m in metas], dtype=np.int64)}
    for f in fields:
        table[f] = np.array([m[3][f] for m in metas], dtype=np.float64)
    return table


def fitted_embedder(root, files, *, embedder: str, options: dict[str, Any] | None, fitted: str | None,
                    fit_docs: int, seed: int, text_field: str, txt_mode: str) -> tuple[Any, dict[str, Any]]:
    """(the embedder every document goes through, what E's manifest records of where it came from): the
    fitted embedder of E=`fitted` as it is, or a new one fitted on the seeded reservoir sample of RAW.
    A one-task embed and task 0 of a multi-task embed (embed/tasks.py) both fit here."""
    if fitted:
        return load_embedder(fitted), {"fitted": str(fitted), "fitted_sha256": read_manifest(fitted)["embedder_sha256"]}
    model = make_embedder(embedder, {**(options or {}), "seed": seed})
    model.fit(reservoir_sample(root, files, fit_docs=fit_docs, seed=seed, text_field=text_field, txt_mode=txt_mode))
    return model, {}


def embed_corpus(root: str | os.PathLike, out: str | os.PathLike, *, embedder: str = "hashing",
                 options: dict[str, Any] | None = None, fitted: str | None = None, fit_docs: int = 50_000,
                 seed: int = 0, batch_size: int = 4096, num_workers: int = 1, text_field: str = "text",
                 txt_mode: str = "file", fields: tuple[str, ...] = ()) -> dict[str, Any]:
    """Embed every document of RAW into E=`out`; returns E's manifest. `fitted`: reuse the fitted
    embedder of an existing E (an added domain, a target folder: the same vectors space, no refit)."""
    from mixtrain.errors import ConfigError

    root, out = Path(root), Path(out)
    if out.exists() and any(out.iterdir()) and not (out / "manifest.json").is_file():
        raise ConfigError(f"--out {out} exists and is not an embeddings folder (no manifest.json); it would be "
                          "replaced: give a new folder or remove it yourself")
    files = corpus_files(root)
    model, fitted_from = fitted_embedder(root, files, embedder=embedder, options=options, fitted=fitted,
                                         fit_docs=fit_docs, seed=seed, text_field=text_field, txt_mode=txt_mode)
    skipped = Skipped()
    docs = iter_corpus(root, skipped, text_field=text_field, txt_mode=txt_mode, fields=fields, files=files)
    metas, chunks = _embed_all(model, docs, batch_size=batch_size, num_workers=num_workers)
    if not metas:
        raise _no_text(root, skipped)
    table = doc_table(metas, fields)
    manifest = {"embedder": model.describe(), **fitted_from, "root": str(root.resolve()), "text_field": text_field,
                "txt_mode": txt_mode, "fields": list(fields), "fit_docs": fit_docs, "seed": seed,
                "num_files": len(files), "num_skipped": len(skipped.rows), "skipped": skipped.counts()}
    write_embeddings(out, np.concatenate(chunks), table, skipped.rows, model, manifest)
    return read_manifest(out)
