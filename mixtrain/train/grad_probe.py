"""The gradient probe: per-domain and target gradients at a strategy's refit steps, sketched, as inner products.

Place in the flow: a strategy's `gradient_probe` (mixtrain/mixing/gradient_probe.py `ProbeSpec`) ->
the controller (train/mixing_controller.py) calls **`GradientProbe.measure`** at each refit, after
the optimizer step -> `ProbeResult` (a k x k Gram, k-vector against the target) -> `MixHistory.probe`
-> the strategy (mixing/doge.py, mixing/tikmix.py). `mixtrain influence` (train/influence.py) uses
the same probe on saved checkpoints.

* Probe batches: for domain i, `samples_per_domain` blocks of its *train* shards; for the target,
  blocks of the validation set (the first `val_blocks_per_domain` val blocks, as the val loaders
  read) of the target domains (`target.importance`, eval-only domains included). Blocks are drawn
  by a generator seeded by (run seed, step, domain): a resumed run draws the same ones. Rank r
  takes samples r, r+W, ... of every probe batch, in micro-batches of the training batch size.
* Each gradient is `torch.autograd.grad` of the mean loss over the probe batch (each micro-batch
  contributes its share of the sum / N): the parameters' `.grad` (the training step's gradient),
  the optimiser state and the RNG streams are untouched (the model runs in eval mode: no dropout draw); every gradient is discarded after it is
  sketched. Memory: one gradient (as training), a sketch index of at most `CHUNK` entries, and
  (k + T) x d sketch floats: O(k d), never O(k x parameters).
* CountSketch: buckets and signs of parameter i come from a generator seeded by (run seed, step,
  i, chunk), on the parameter's device; sketches are linear, so the sum over micro-batches and one
  all-reduce over ranks give the sketch of the full probe batch's gradient, identical on every
  rank. The Gram is then computed in float64 from the identical sketches on every rank.
* FSDP-sharded parameters (DTensor) are refused: hashing by the global coordinate of a shard is
  not implemented yet (docs/online.md).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Sequence

import numpy as np
import torch

from mixtrain.mixing.gradient_probe import ProbeResult, ProbeSpec
from mixtrain.model.gpt import per_token_loss
from mixtrain.sampler import read_domain_blocks
from mixtrain.sampler.readers import DomainReaders

CHUNK = 1 << 22  # coordinates hashed at once: bounds the sketch's index memory on large parameters


def _seed(*parts: int) -> int:
    """A 63-bit generator seed from integers (numpy's SeedSequence mixes them; same on every host)."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1, np.uint64)[0] >> np.uint64(1))


class CountSketch:
    """A seeded CountSketch of a list of parameter-shaped tensors into `dim` buckets (see the module doc)."""

    def __init__(self, dim: int, seed: int, step: int):
        self.dim, self.seed, self.step = int(dim), int(seed), int(step)

    def add(self, out: torch.Tensor, tensors: Sequence[torch.Tensor | None], scale: Sequence[torch.Tensor] | None = None):
        """out += S(tensors) (times the elementwise `scale`, e.g. a preconditioner); None entries are zeros."""
        for i, t in enumerate(tensors):
            if t is None:
                continue
            flat = t.detach().reshape(-1).to(out.dtype)
            if scale is not None:
                flat = flat * scale[i].reshape(-1).to(out.dtype)
            for c, start in enumerate(range(0, flat.numel(), CHUNK)):
                part = flat[start:start + CHUNK]
                gen = torch.Generator(device=part.device)
                gen.manual_seed(_seed(self.seed, self.step, i, c))
                # one draw gives both: bucket = r >> 1, sign from the low bit (half the RNG work of two draws)
                r = torch.randint(0, 2 * self.dim, (part.numel(),), generator=gen, device=part.device)
                signs = (r & 1).to(out.dtype) * 2 - 1
                out.index_add_(0, r >> 1, part * signs)
        return out


def adam_preconditioner(optimizer, params: Sequence[torch.Tensor]) -> list[torch.Tensor] | None:
    """1 / (sqrt(bias-corrected exp_avg_sq) + eps) per parameter, from an Adam/AdamW state (read only);
    None before the first step (no second moment yet: the identity)."""
    if optimizer is None:
        return None
    group_of = {id(p): g for g in optimizer.param_groups for p in g["params"]}
    out = []
    for p in params:
        state = optimizer.state.get(p, {})
        if "exp_avg_sq" not in state:
            return None
        group = group_of[id(p)]
        beta2, eps = group["betas"][1], group["eps"]
        t = float(state["step"])
        v_hat = state["exp_avg_sq"] / (1.0 - beta2 ** t)
        out.append(1.0 / (v_hat.sqrt() + eps))
    return out


class ProbeData:
    """Seeded probe blocks: train shards per training domain, the validation set per target domain."""

    def __init__(self, data_dir: str, domains: Sequence[str], val_domains: Sequence[str], block_size: int,
                 val_blocks_per_domain: int, seed: int):
        self.block_size, self.seed = int(block_size), int(seed)
        train = [read_domain_blocks(d, os.path.join(data_dir, d, "train"), self.block_size) for d in domains]
        val = [read_domain_blocks(d, os.path.join(data_dir, d, "val"), self.block_size) for d in val_domains]
        self.train, self.val = DomainReaders(train, self.block_size), DomainReaders(val, self.block_size)
        self.train_blocks = [b.num_blocks for b in train]
        # the validation set is the val loaders' first val_blocks_per_domain blocks: the target is that set
        self.val_blocks = [min(int(val_blocks_per_domain), b.num_blocks) for b in val]
        self._cum = {"train": [np.cumsum(b.blocks_per_chunk) for b in train],
                     "val": [np.cumsum(b.blocks_per_chunk) for b in val]}

    def draw(self, split: str, step: int, index: int, n: int) -> np.ndarray:
        """n block indices of domain `index` of `split`, seeded by (seed, step, split, index)."""
        pool = (self.train_blocks if split == "train" else self.val_blocks)[index]
        if pool <= 0:
            raise ValueError(f"gradient probe: domain #{index} has no {split} block of {self.block_size} tokens")
        rng = np.random.default_rng([self.seed, int(step), 0 if split == "train" else 1, int(index)])
        return rng.integers(0, pool, size=int(n))

    def read(self, split: str, domain_ids: Sequence[int], blocks: Sequence[int]) -> np.ndarray:
        cum = self._cum[split]
        chunks = [int(np.searchsorted(cum[d], b, side="right")) for d, b in zip(domain_ids, blocks)]
        reader = self.train if split == "train" else self.val
        return reader.read(list(map(int, domain_ids)), chunks, list(map(int, blocks)))


class GradientProbe:
    """Measures a `ProbeSpec` on a model (see the module doc); `reduce` sums a tensor over ranks."""

    def __init__(self, spec: ProbeSpec, data: ProbeData, domains: Sequence[str], val_domains: Sequence[str],
                 importance: dict[str, float], *, batch_size: int, rank: int = 0, world_size: int = 1,
                 reduce: Callable[[torch.Tensor], torch.Tensor] | None = None):
        self.spec, self.data = spec, data
        self.domains, self.val_domains = list(domains), list(val_domains)
        self.tasks = [d for d in self.val_domains if importance.get(d, 0.0) > 0]
        self.importance = np.array([importance[d] for d in self.tasks], dtype=np.float64)
        self.importance = self.importance / self.importance.sum()
        self.batch_size, self.rank, self.world_size = int(batch_size), int(rank), int(world_size)
        self.reduce = reduce or (lambda t: t)

    def _batches(self, step: int) -> list[tuple[str, list[int], list[int]]]:
        """(split, domain ids, block ids) of every probe vector, in order: domains, then targets."""
        s = self.spec
        out = [("train", [i] * s.samples_per_domain, self.data.draw("train", step, i, s.samples_per_domain).tolist())
               for i in range(len(self.domains))]
        task_ids = [self.val_domains.index(t) for t in self.tasks]
        if s.tasks == "each":
            out += [("val", [v] * s.target_samples, self.data.draw("val", step, v, s.target_samples).tolist())
                    for v in task_ids]
        elif s.tasks == "target":  # one batch whose tasks are drawn by importance: an unbiased target
            rng = np.random.default_rng([self.data.seed, int(step), 2])
            picks = rng.choice(len(task_ids), size=s.target_samples, p=self.importance)
            ids = [task_ids[p] for p in picks]
            blocks = [int(self.data.draw("val", step, v, s.target_samples)[j]) for j, v in enumerate(ids)]
            out.append(("val", ids, blocks))
        return out

    def _sketch_one(self, model, params, split, ids, blocks, sketch, out, scale, device, autocast) -> None:
        n = len(blocks)
        mine = list(range(self.rank, n, self.world_size))
        for start in range(0, len(mine), self.batch_size):
            part = mine[start:start + self.batch_size]
            tokens = torch.from_numpy(self.data.read(split, [ids[j] for j in part], [blocks[j] for j in part])
                                      .astype(np.int64)).to(device)
            with autocast():
                loss = per_token_loss(model(tokens[:, :-1]), tokens[:, 1:]).mean(dim=1).sum() / n
            grads = torch.autograd.grad(loss, params, allow_unused=True)
            sketch.add(out, grads, scale)
            del grads, loss

    def measure(self, model: torch.nn.Module, step: int, *, optimizer=None, lr: float = 0.0,
                autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext) -> ProbeResult:
        """Sketch every probe gradient at the model's current weights; inner products identical on every rank."""
        t0 = time.perf_counter()
        params = [p for p in model.parameters() if p.requires_grad]
        if any(type(p).__name__ == "DTensor" or type(getattr(p, "data", None)).__name__ == "DTensor" for p in params):
            raise NotImplementedError("the gradient probe does not support FSDP-sharded parameters yet: use trainer=ddp "
                                      "(or a single device) with a gradient strategy (docs/online.md)")
        device = params[0].device
        sketch = CountSketch(self.spec.sketch_dim, self.data.seed, step)
        batches = self._batches(step)
        k = len(self.domains)
        pre = adam_preconditioner(optimizer, params) if self.spec.precondition == "adam" else None
        sketches = torch.zeros(len(batches), self.spec.sketch_dim, device=device, dtype=torch.float32)
        was_training = model.training
        model.eval()  # dropout off: the probe draws nothing from the run's RNG and is deterministic per step
        try:
            for row, (split, ids, blocks) in enumerate(batches):
                self._sketch_one(model, params, split, ids, blocks, sketch, sketches[row],
                                 pre if row >= k else None, device, autocast)
        finally:
            model.train(was_training)
        sketches = self.reduce(sketches)  # one all-reduce: the full probe batch's sketches, the same on every rank
        S = sketches.double().cpu().numpy()
        D, Tm = S[:k], S[k:]
        result = ProbeResult(step=int(step), domains=list(self.domains), gram=D @ D.T, tasks=list(self.tasks),
                             importance=self.importance.copy(), lr=float(lr), sketch_dim=self.spec.sketch_dim)
        if self.spec.tasks == "each":
            result.task_inner = D @ Tm.T
            result.target_inner = result.task_inner @ self.importance
            result.task_norm_sq = np.einsum("td,td->t", Tm, Tm)
        elif self.spec.tasks == "target":
            result.target_inner = (D @ Tm.T)[:, 0]
            result.task_norm_sq = np.einsum("td,td->t", Tm, Tm)
        result.seconds = time.perf_counter() - t0
        return result


def probe_for_trainer(spec: ProbeSpec, trainer, pl_module) -> GradientProbe:
    """The probe of a running Lightning fit: its data, domains, target importance, rank and all-reduce."""
    dm = trainer.datamodule
    importance = pl_module.target_importance or {d: 1.0 / len(dm.domains) for d in dm.domains}
    data = ProbeData(dm.data_dir, dm.domains, dm.val_domains, dm.block_size, dm.val_blocks_per_domain, dm.seed)
    return GradientProbe(spec, data, dm.domains, dm.val_domains, importance, batch_size=dm.batch_size,
                         rank=trainer.global_rank, world_size=trainer.world_size,
                         reduce=lambda t: trainer.strategy.reduce(t, reduce_op="sum"))


def measure_in_fit(probe: GradientProbe, trainer, pl_module) -> ProbeResult:
    """`probe.measure` on the trained model at the current step, under the run's precision context."""
    optimizer = trainer.optimizers[0] if trainer.optimizers else None
    lr = float(optimizer.param_groups[0]["lr"]) if optimizer is not None else 0.0
    precision = trainer.strategy.precision_plugin
    return probe.measure(pl_module.model, trainer.global_step, optimizer=optimizer, lr=lr,
                         autocast=precision.forward_context)
