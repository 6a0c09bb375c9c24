"""prepare/val_share.py: prepare warns when a domain's validation split holds over 10% of its tokens,
naming the keys that set the split (shards.min_val_tokens, shards.val_fraction, shards.max_val_tokens)."""

from __future__ import annotations

from mixtrain.prepare.val_share import val_share_warning


def test_warning_only_above_a_tenth_and_naming_the_keys():
    assert val_share_warning("web", {"num_tokens": 1_000_000, "num_val_tokens": 20_000}) is None
    assert val_share_warning("web", {"num_tokens": 0, "num_val_tokens": 0}) is None
    line = val_share_warning("manpages", {"num_tokens": 188_061, "num_val_tokens": 94_024, "num_train_tokens": 94_037})
    assert line.startswith("[prepare] warning: manpages: validation holds 94,024 of its 188,061 tokens (50%)")
    assert all(key in line for key in ("shards.min_val_tokens", "shards.val_fraction", "shards.max_val_tokens"))


def test_prepare_prints_it_for_a_small_domain(tiny_raw_dir, tmp_path, capfd):
    from mixtrain.prepare.pipeline import prepare_corpus
    from mixtrain.prepare.shards import ShardSettings

    prepare_corpus(tiny_raw_dir, tmp_path / "data", vocab_size=320, sample_bytes_per_domain=200_000,
                   settings=ShardSettings(block_size=65, blocks_per_chunk=8, min_val_tokens=12_000, val_fraction=0.05))
    err = capfd.readouterr().err
    warned = sorted(line.split(":")[1].strip() for line in err.splitlines() if line.startswith("[prepare] warning:"))
    assert warned == ["code", "prose", "tables"], err  # 12,000 of 27k-52k tokens each
