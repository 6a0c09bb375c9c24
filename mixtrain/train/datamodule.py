"""Lightning data: the mixed training stream and one fixed validation loader per domain.

Place in the flow: a prepared DIR (mixtrain/prepare/) + mixtrain/sampler/ -> **datamodule.py** -> Trainer/module.py.

* Training: one `MixtureStream` over every domain's train shards, built in
  `train_dataloader()` (after the process group exists, so rank and world size are real).
* Validation: for every domain, the first `val_blocks_per_domain` blocks of its val shards,
  split across ranks without padding (rank r takes blocks r, r+W, ...), identical for every
  mixture and never reweighted. The module logs `val/<domain>/loss` and their mean `val/loss`.
* Eval-only domains (`eval_only_domains`): domains of the same data_dir that are never trained
  on: no sampler entry, no weight, no stats for the strategies; only a val loader (after the
  training domains', in `val_domains` order) -- a held-out target the mixture is scored on.
* `read_layout()` reads what a prepared data_dir holds (domains, stats, vocabulary) before
  anything is built: the strategy computes its initial weights from it, and the DataModule is
  then built with them (constructor argument, never set afterwards).
* State: `state_dict()` is the sampler state; Lightning stores it in the checkpoint and
  calls `load_state_dict()` before `train_dataloader()` on resume. Marking batches consumed and
  logging the mixture is the mixing controller's job (train/mixing_controller.py).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader, Dataset

from mixtrain.store.chunk_check import ChunkVerifier
from mixtrain.sampler import MixtureStream, make_loader, read_domain_blocks
from mixtrain.store.datadir import read_manifest, read_stats
from mixtrain.train.config import SamplerConfig


class ValBlocks(Dataset):
    """A fixed slice of one domain's val blocks (map-style; this rank's share only)."""

    def __init__(self, val_dir: str, block_size: int, indices: list[int]):
        self.val_dir, self.block_size, self.indices = val_dir, block_size, indices
        self._ds = None

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> torch.Tensor:
        if self._ds is None:  # opened lazily, inside the reading process
            from litdata import StreamingDataset, TokensLoader

            ChunkVerifier([self.val_dir]).check_all()  # chunk_check.py: a changed byte stops with the file named
            self._ds = StreamingDataset(self.val_dir, item_loader=TokensLoader(block_size=self.block_size))
        block = self._ds[self.indices[i]]
        if i == len(self.indices) - 1:
            # validation reads in order: after the last block, let the dataset (and the chunk file it
            # maps) go, so with hundreds of domains only the domain being validated holds a file open
            self._ds = None
        return block


@dataclass(frozen=True)
class DataLayout:
    """What a prepared data_dir holds, split into training and eval-only domains."""

    data_dir: str
    manifest: dict[str, Any]
    domains: list[str]  # training domains, in the manifest's order (the sampler's domain ids)
    eval_only_domains: list[str]  # validated, never trained on
    stats: dict[str, dict[str, Any]]  # DIR/<domain>/stats.json of every training domain

    @property
    def val_domains(self) -> list[str]:
        return self.domains + self.eval_only_domains  # the val loaders' order

    @property
    def vocab_size(self) -> int:
        return int(self.manifest["vocab_size"])


def read_layout(data_dir: str | os.PathLike, eval_only_domains: Sequence[str] = ()) -> DataLayout:
    """The domains and stats of a prepared data_dir; unknown or all-consuming eval-only domains are refused."""
    data_dir = os.fspath(data_dir)
    manifest = read_manifest(data_dir)
    prepared = list(manifest["domains"])
    unknown = [d for d in eval_only_domains if d not in prepared]
    if unknown:
        raise ValueError(
            f"eval_only_domains: {unknown[0]!r} is not a domain of {data_dir} (prepared: {prepared}); "
            "prepare the eval text as an extra domain of the same data_dir (same tokenizer) or fix the name"
        )
    eval_only = [d for d in prepared if d in set(eval_only_domains)]
    domains = [d for d in prepared if d not in set(eval_only_domains)]
    if not domains:
        raise ValueError(f"eval_only_domains={list(eval_only_domains)} leaves no training domain in {data_dir}")
    return DataLayout(data_dir, manifest, domains, eval_only, {d: read_stats(data_dir, d) for d in domains})


class MixtureDataModule(pl.LightningDataModule):
    """The training stream and the validation loaders of `layout`, shaped by the `sampler` section
    (train/config.py) and the run's batch shape; the strategy's `initial_weights` govern step 0."""

    def __init__(
        self,
        layout: DataLayout,
        sampler: SamplerConfig,
        *,
        seq_len: int,
        batch_size: int,
        initial_weights: Mapping[str, float],
        seed: int,
        val_blocks_per_domain: int,
        pin_memory: bool = True,
        val_batch_size: int | None = None,
    ):
        super().__init__()
        self.layout = layout
        self.data_dir = layout.data_dir
        self.manifest = layout.manifest
        self.eval_only_domains: list[str] = list(layout.eval_only_domains)
        self.domains: list[str] = list(layout.domains)  # training domains
        self.val_domains: list[str] = layout.val_domains
        self.stats = layout.stats
        if sorted(initial_weights) != sorted(self.domains):
            raise ValueError(f"initial weights are for domains {sorted(initial_weights)} but {self.data_dir} trains "
                             f"on {self.domains}")
        self.initial_weights: dict[str, float] = dict(initial_weights)  # the strategy's, for step 0
        self.block_size = int(seq_len) + 1  # inputs + the shifted targets
        if self.block_size > int(self.manifest["block_size"]):
            raise ValueError(
                f"seq_len={seq_len} needs blocks of {self.block_size} tokens but {self.data_dir} was prepared with "
                f"block_size={self.manifest['block_size']} (seq_len <= {int(self.manifest['block_size']) - 1}); "
                f"lower seq_len or re-run prepare with block_size={self.block_size}"
            )
        self.train_blocks = [
            read_domain_blocks(d, os.path.join(self.data_dir, d, "train"), self.block_size) for d in self.domains
        ]
        self.sampler = sampler
        self.seq_len = int(seq_len)
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.pin_memory = pin_memory
        self.val_blocks_per_domain = int(val_blocks_per_domain)
        if self.val_blocks_per_domain < 1:  # 0 used to run "validation" on no blocks: no val loss, silently
            raise ValueError(
                f"val_blocks_per_domain={val_blocks_per_domain} leaves no validation block; use >= 1, or disable "
                "validation explicitly with trainer.limit_val_batches=0 (the run then has no val/ losses)"
            )
        self.val_batch_size = int(val_batch_size or batch_size)
        self.stream: MixtureStream | None = None
        self._pending_state: dict[str, Any] | None = None

    @property
    def vocab_size(self) -> int:
        return self.layout.vocab_size

    def _rank_world(self) -> tuple[int, int]:
        trainer = self.trainer
        if trainer is not None:
            return trainer.global_rank, trainer.world_size
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            return torch.distributed.get_rank(), torch.distributed.get_world_size()
        return 0, 1

    def build_stream(self) -> MixtureStream:
        rank, world = self._rank_world()
        stream = MixtureStream(
            self.train_blocks, self.initial_weights, block_size=self.block_size, batch_size=self.batch_size,
            seed=self.seed, mode=self.sampler.mode, rank=rank, world_size=world, tokens_per_sample=self.seq_len,
            num_workers=self.sampler.num_workers, prefetch_factor=self.sampler.prefetch_factor,
            window_samples=self.sampler.window_samples, weight_lag_batches=self.sampler.weight_lag_batches,
            max_open_chunks=self.sampler.max_open_chunks,
        )
        if self._pending_state is not None:
            stream.load_state_dict(self._pending_state)
            self._pending_state = None
        return stream

    def train_dataloader(self):
        if self.stream is None:
            self.stream = self.build_stream()
        elif self._pending_state is not None:
            self.stream.load_state_dict(self._pending_state)
            self._pending_state = None
        return make_loader(self.stream, pin_memory=self.pin_memory)

    def val_dataloader(self):
        rank, world = self._rank_world()
        loaders = []
        for d in self.val_domains:  # the module maps dataloader_idx -> val_domains[idx]
            val_dir = os.path.join(self.data_dir, d, "val")
            available = read_domain_blocks(d, val_dir, self.block_size).num_blocks
            indices = list(range(min(self.val_blocks_per_domain, available)))[rank::world]
            loaders.append(
                DataLoader(
                    ValBlocks(val_dir, self.block_size, indices), batch_size=self.val_batch_size, shuffle=False,
                    num_workers=0,
                )
            )
        return loaders

    def state_dict(self) -> dict[str, Any]:
        if self.stream is not None:
            return {"sampler": self.stream.state_dict()}
        return {"sampler": self._pending_state} if self._pending_state else {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if state.get("sampler"):
            self._pending_state = dict(state["sampler"])
            if self.stream is not None:  # loader already built: apply now
                self.stream.load_state_dict(self._pending_state)
                self._pending_state = None

    def forget_sampler_state(self) -> None:
        """resume_data=switch (train/data_identity.py): the saved positions index the old shards, so
        the stream starts over on the new ones (called after Lightning restored this module's state)."""
        self._pending_state = None
