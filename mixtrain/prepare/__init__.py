"""Preparation: raw text per domain -> tokenizer -> litdata shards + stats -> a prepared DIR.

Place in the flow: the first stage; everything after it reads DIR (store/datadir.py says how).

    config.py         PrepareConfig, EntropyConfig: the typed configs of `prepare` and `entropy`
    pipeline.py       `prepare(PrepareConfig)`: sources by name (demo, dir, hf), every refusal before writing
    corpus.py         readers by file suffix (.txt modes, .jsonl(.gz/.zst), .parquet), HF datasets by domain field
    demo_corpus.py    the embedded demo corpus, built from this Python installation (no download)
    tokenizer.py      SentencePiece (trained on a balanced sample) or an HF tokenizer.json
    shards.py         N tokenizer processes, one litdata writer, checksums/stats/manifest; idempotent, atomic
    shares.py         task i of n (SLURM array, torchrun, srun), its share of each domain, the share lock
    tasks.py          `prepare` as task i of n: task 0's tokenizer, the shares, the join (docs/prepare_multinode.md)
    val_share.py      the warning when a domain gives over 10% of its tokens to validation
    domain_entropy.py SE/CE/JE/VNE of each domain's shards (BiMix), cached in stats.json
    __main__.py       `python -m mixtrain.prepare` (Hydra: mixtrain/hydra_app.py)
    entropy_cli.py    `python -m mixtrain.prepare.entropy_cli` (`mixtrain entropy`)
"""
