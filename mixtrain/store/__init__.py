"""On-disk formats every stage reads and writes: the one place each file layout is defined.

Place in the flow: below every stage. prepare/ writes the data directory, train/ writes run
directories and checkpoints, and fitting/, mixing/, model/ and report/ read them, all through
this package. It imports no other mixtrain module, so any stage may import it without a cycle.
Pure file handling: no Lightning or Hydra (torch only to read a checkpoint; litdata's and fsspec's
clients only to reach an object store). Layouts: docs/formats.md.

    runfiles.py          run directories: file names (metrics.csv, refits.jsonl, summary.json),
                         finding runs, the one metrics.csv reader, the one atomic writer
    datadir.py           the prepared data directory: stats.json, checksums.json, manifest.json;
                         read, record, verify (sizes at train start, sha256 on demand)
    chunk_check.py       verify-on-first-read: each shard chunk's sha256 against checksums.json
    litdata_range.py     the litdata releases the shard format is tested with (`require_litdata`)
    locks.py             the prepare lock: one writer per prepared folder (flock)
    remote.py            object stores (s3/gs/r2/file): mirror raw text, publish and pull a
                         prepared DIR through a local staging folder
    checkpoint_files.py  RUN/checkpoints: file names, the checkpoint a run continues from, reading
                         a file or a sharded FSDP folder (the Lightning callbacks that write them
                         are mixtrain/train/checkpoints.py)
"""
