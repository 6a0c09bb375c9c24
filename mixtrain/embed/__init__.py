"""Embeddings: one vector per document of a raw corpus, from a pluggable embedder.

Place in the flow: raw text (RAW, labelled or not; the readers of prepare/corpus.py) -> **embed/**
-> E/ (vectors.npy, docs.parquet, manifest.json, the fitted embedder) -> cluster/ (domains from
unlabelled text) and the representation strategies of mixing/ (chameleon, domain2vec), which read
E through store.py (numpy + pyarrow only). Imports prepare/, store/ and (the `run` embedder only) model/; no torch for `hashing`.

    documents.py   every document of RAW as (source, doc, text); empty / non-UTF-8 / unreadable
                   documents are skipped and counted (never silently), with the reason
    hashing.py     the default embedder: hashed word + char n-grams -> TF-IDF -> TruncatedSVD
    embedders.py   the registry (`EMBEDDERS`: hashing, hf, run) and the local HF encoder
    run_embedder.py  a mixtrain run's mean-pooled middle-layer hidden states (torch; Chameleon)
    store.py       the columnar embeddings folder: write, read, domain means, embedder identity
    pipeline.py    `embed_corpus`: sample -> fit -> transform every document -> store
    tasks.py       `mixtrain embed` as task i of n (SLURM array, torchrun, --node-rank): one fit, a
                   share of the files per task, the last task joins (identical to one task)
    cli.py         `mixtrain embed RAW --out E` (argparse)
"""
