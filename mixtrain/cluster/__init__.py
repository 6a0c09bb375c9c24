"""Domains from unlabelled text (CLIMB's first half): k-means, pruning by quality, Ward merge, a data=dir layout.

Place in the flow: embed/ (E: one vector per document) -> **cluster/** -> OUT/<cluster>/*.jsonl (a
`data=dir` RAW for prepare/), OUT/assignments.csv, OUT/report.md + report.png, OUT/clustering.npz
(the meta-domains mixing/domain2vec.py assigns documents to) and OUT/.embeddings (E relabelled by
cluster: mixing.embeddings for chameleon / domain2vec). Imports embed/, prepare/, store/ only.

    kmeans.py     k-means fitted on a seeded sample, every document assigned (faiss-cpu or scikit-learn)
    prune.py      per-document quality (a column of E or a "module:function" callable), clusters below a threshold dropped
    merge.py      Ward linkage of the surviving centroids, cut at a distance; stable readable names
    describe.py   sizes, most typical documents, most distinctive terms, the 2-D plot, report.md
    write.py      OUT/<cluster>/ jsonl, assignments.csv, clustering.npz, OUT/.embeddings
    pipeline.py   `cluster_corpus`: the four steps in order
    cli.py        `mixtrain cluster RAW --out OUT --k K ...`
"""
