"""Writing the clusters: OUT/<cluster>/part-00000.jsonl, assignments.csv, clustering.npz, OUT/.embeddings.

Place in the flow: cluster/merge.py (document -> merged cluster) -> **write.py** -> prepare/
(`data=dir data.root=OUT`), mixing/domain2vec.py (clustering.npz) and mixing/chameleon.py
(OUT/.embeddings). Hidden entries (.embeddings, .pruned) are not domains to prepare/corpus.py.

RAW is read once more, in the order it was embedded; each document must be the row of the
embeddings it was then (same source, same index), or RAW changed since `mixtrain embed` and
this refuses (re-embed). Pruned documents go to OUT/.pruned/ (kept, not a domain: nothing lost).
"""

from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path

import numpy as np
from tqdm import tqdm

from mixtrain.embed.documents import Skipped, iter_corpus
from mixtrain.embed.store import DOCS, MANIFEST, VECTORS
from mixtrain.errors import DataError

PRUNED = ".pruned"
EMBEDDINGS = ".embeddings"
CLUSTERING = "clustering.npz"


def write_documents(out: Path, manifest: dict, docs: dict[str, np.ndarray], groups: np.ndarray,
                    wanted: np.ndarray) -> dict[int, str]:
    """Every document into OUT/.g<group>/ (or OUT/.pruned/); returns {row: text} of the `wanted` rows."""
    handles: dict[int, object] = {}
    texts: dict[int, str] = {}
    want = set(int(i) for i in wanted)
    sources, numbers = docs["source"], docs["doc"]
    row = 0
    try:
        for source, doc, text, _ in tqdm(iter_corpus(manifest["root"], Skipped(), text_field=manifest["text_field"],
                                                     txt_mode=manifest["txt_mode"]),
                                         desc="cluster: write", unit=" docs", total=len(groups), mininterval=2):
            if row >= len(groups) or sources[row] != source or int(numbers[row]) != doc:
                raise DataError(f"{manifest['root']}: document {source}#{doc} is not row {row} of the embeddings; "
                                "RAW changed since `mixtrain embed` - embed it again")
            g = int(groups[row])
            if g not in handles:
                folder = out / (PRUNED if g < 0 else f".g{g}")
                folder.mkdir(parents=True, exist_ok=True)
                handles[g] = open(folder / "part-00000.jsonl", "w", encoding="utf-8")
            handles[g].write(json.dumps({"text": text, "source": source, "doc": doc}, ensure_ascii=False) + "\n")
            if row in want:
                texts[row] = text
            row += 1
    finally:
        for h in handles.values():
            h.close()
    if row != len(groups):
        raise DataError(f"{manifest['root']}: {row} documents now, {len(groups)} when embedded; embed it again")
    return texts


def finish(out: Path, names: list[str], docs: dict[str, np.ndarray], groups: np.ndarray, embeddings: Path,
           arrays: dict[str, np.ndarray], info: dict) -> None:
    """Rename OUT/.g<i> to the names; write assignments.csv, clustering.npz/json and OUT/.embeddings."""
    for g, name in enumerate(names):
        if (out / f".g{g}").is_dir():
            os.replace(out / f".g{g}", out / name)
    labels = np.array(["pruned", *names], dtype=object)[groups + 1]
    with open(out / "assignments.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["source", "doc", "cluster"])
        writer.writerows(zip(docs["source"], docs["doc"].tolist(), labels))
    np.savez(out / CLUSTERING, **arrays, names=np.array(names))
    (out / "clustering.json").write_text(json.dumps({**info, "names": names}, indent=2) + "\n")
    relabel_embeddings(embeddings, out / EMBEDDINGS, labels)


def relabel_embeddings(source: Path, target: Path, labels: np.ndarray) -> None:
    """A copy of E whose `domain` is each document's cluster (vectors hard-linked where possible)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if target.resolve() != source.resolve():
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        for name in os.listdir(source):
            if name == DOCS:
                continue
            try:
                os.link(source / name, target / name)
            except OSError:
                shutil.copy2(source / name, target / name)
    table = pq.read_table(source / DOCS)
    if "raw_domain" not in table.column_names:
        table = table.append_column("raw_domain", table.column("domain"))
    table = table.set_column(table.column_names.index("domain"), "domain", pa.array(list(labels), pa.string()))
    pq.write_table(table, target / f".{DOCS}.tmp")
    os.replace(target / f".{DOCS}.tmp", target / DOCS)
    assert (target / MANIFEST).is_file() and (target / VECTORS).is_file()
