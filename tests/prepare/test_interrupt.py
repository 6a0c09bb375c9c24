"""Ctrl-C while prepare writes shards (issue 30): litdata's handler used to `os._exit(0)`, leaving a
temporary folder and no message. Now: non-zero exit, a message naming the domain, nothing left."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

SCRIPT = """
import os, signal, sys, time
from pathlib import Path
from mixtrain.prepare import shards
from mixtrain.prepare.tokenizer import open_data_tokenizer

real = shards._emit_documents

def interrupting(item):  # runs in litdata's worker: Ctrl-C reaches the prepare process mid-write
    os.kill(os.getppid(), signal.SIGINT)
    time.sleep(60)
    yield from real(item)

shards._emit_documents = interrupting
docs = [" ".join(["model data mixture tokens"] * 60) for _ in range(20)]
settings = shards.ShardSettings(block_size=65, blocks_per_chunk=8, min_val_tokens=200)
shards.write_domain("web", docs, open_data_tokenizer(sys.argv[1]), Path(sys.argv[2]), settings, "fp")
print("finished", flush=True)
"""


def test_ctrl_c_while_writing_shards_exits_non_zero_and_cleans_up(tiny_data_dir, tmp_path):
    out = tmp_path / "data"
    out.mkdir()
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(tiny_data_dir), str(out)], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode != 0 and "finished" not in done.stdout
    assert "interrupted while writing domain 'web'" in done.stderr and "run the same command again" in done.stderr
    assert sorted(p.name for p in out.iterdir()) == []  # no .web.tmp-<pid>, no web/


def test_the_sigint_handler_of_before_is_restored(tiny_data_dir, tmp_path):
    from mixtrain.prepare.shards import ShardSettings, write_domain
    from mixtrain.prepare.tokenizer import open_data_tokenizer

    before = signal.getsignal(signal.SIGINT)
    docs = [" ".join(["model data mixture tokens"] * 60) for _ in range(20)]
    write_domain("web", docs, open_data_tokenizer(tiny_data_dir), tmp_path,
                 ShardSettings(block_size=65, blocks_per_chunk=8, min_val_tokens=200), "fp")
    assert signal.getsignal(signal.SIGINT) is before  # litdata's os._exit(0) handler does not outlive prepare
