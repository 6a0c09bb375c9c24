"""Word-list topics for the embed / cluster / domain2vec tests: documents whose topic is known, written
as unlabelled jsonl (with a `quality` field) or as a labelled RAW/<domain>/ folder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

TOPICS = {
    "python": "def import return self class lambda yield none print list dict tuple range len append module".split(),
    "cooking": "flour butter oven bake sugar salt onion garlic simmer boil recipe pan whisk dough pepper".split(),
    "law": "court plaintiff defendant statute appeal judge ruling contract liability clause tenant breach".split(),
    "astronomy": "galaxy star orbit planet telescope nebula comet redshift solar lunar eclipse quasar".split(),
    "spam": "buy cheap pills click now free offer winner casino bonus discount viagra deal prize".split(),
}
COMMON = "the a of and to in is it that for on with as was at by".split()


def topic_doc(rng: np.random.Generator, topic: str, n_words: int = 60) -> str:
    words = [rng.choice(TOPICS[topic]) if rng.random() < 0.7 else rng.choice(COMMON) for _ in range(n_words)]
    return " ".join(words)


def write_unlabelled(root: Path, per_topic: int = 60, seed: int = 0, topics=tuple(TOPICS)) -> dict[tuple[str, int], str]:
    """Documents of every topic shuffled over 3 jsonl files; returns {(source, doc): topic}."""
    rng = np.random.default_rng(seed)
    items = [(t, topic_doc(rng, t)) for t in topics for _ in range(per_topic)]
    order = rng.permutation(len(items))
    root.mkdir(parents=True, exist_ok=True)
    truth = {}
    for f in range(3):
        with open(root / f"crawl{f}.jsonl", "w") as out:
            for doc, i in enumerate(order[f::3]):
                topic, text = items[i]
                quality = 0.5 if topic == "spam" else 3.0 + rng.random() * 2
                out.write(json.dumps({"text": text, "quality": quality}) + "\n")
                truth[(f"crawl{f}.jsonl", doc)] = topic
    return truth


def write_mixture_domain(folder: Path, mixture: dict[str, float], n_docs: int, rng: np.random.Generator) -> None:
    """A domain folder whose documents are drawn from topics in the given shares (one .txt per document)."""
    folder.mkdir(parents=True, exist_ok=True)
    counts = {t: int(round(w * n_docs)) for t, w in mixture.items()}
    i = 0
    for topic, n in counts.items():
        for _ in range(n):
            (folder / f"d{i:04d}.txt").write_text(topic_doc(rng, topic))
            i += 1
