"""Tests for mixtrain.train.grad_probe (the gradient probe) and mixtrain.mixing.gradient_probe (its contract):
sketched inner products against exact ones within the stated bound, a finite-difference check of the
first-order influence, determinism, and that training state is left alone."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mixtrain.mixing.gradient_probe import ProbeSpec, sketch_error_bound
from mixtrain.model.config import GPTConfig
from mixtrain.model.gpt import GPT, per_token_loss
from mixtrain.train.grad_probe import CountSketch, GradientProbe, ProbeData

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SEQ = 32


def _model(vocab=320, seed=0):
    torch.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=vocab, seq_len=SEQ, n_layer=2, n_head=2, d_model=32))


def _probe(data_dir, spec, importance=None, seed=0):
    import json

    domains = json.loads((data_dir / "manifest.json").read_text())["domains"]
    data = ProbeData(str(data_dir), domains, domains, SEQ + 1, 4, seed)
    importance = importance or {d: 1 / len(domains) for d in domains}
    return GradientProbe(spec, data, domains, domains, importance, batch_size=4)


def _exact_grad(model, tokens):
    loss = per_token_loss(model(tokens[:, :-1]), tokens[:, 1:]).mean()
    grads = torch.autograd.grad(loss, list(model.parameters()))
    return torch.cat([g.reshape(-1) for g in grads]).double(), loss


def test_sketch_error_within_stated_bound_and_shrinks_with_dim():
    """RMS of (<Sa,Sb> - <a,b>) / (|a||b|) over pairs of real gradients and sketch seeds stays below
    sqrt(2/d) (+ 30% for the finite sample), for d = 256, 1024, 4096."""
    model = _model()
    gen = torch.Generator().manual_seed(1)
    batches = [torch.randint(0, 320, (4, SEQ + 1), generator=gen) for _ in range(4)]
    grads = []
    for b in batches:
        loss = per_token_loss(model(b[:, :-1]), b[:, 1:]).mean()
        grads.append(torch.autograd.grad(loss, list(model.parameters())))
    flat = [torch.cat([g.reshape(-1) for g in gs]).double() for gs in grads]
    rms = {}
    for d in (256, 1024, 4096):
        errors = []
        for seed in range(12):
            sk = [CountSketch(d, seed, step=7).add(torch.zeros(d, dtype=torch.float64), gs) for gs in grads]
            for i in range(4):
                for j in range(i, 4):
                    exact = float(flat[i] @ flat[j])
                    errors.append((float(sk[i] @ sk[j]) - exact) / float(flat[i].norm() * flat[j].norm()))
        rms[d] = float(np.sqrt(np.mean(np.square(errors))))
        assert rms[d] <= 1.3 * sketch_error_bound(d), (d, rms[d], sketch_error_bound(d))
    assert rms[4096] < rms[1024] < rms[256]


def test_sketch_is_linear_and_seeded():
    a, b = [torch.randn(50, 7)], [torch.randn(50, 7)]
    s = CountSketch(64, seed=3, step=5)
    both = s.add(torch.zeros(64), [a[0] + 2 * b[0]])
    parts = s.add(s.add(torch.zeros(64), a), [2 * b[0]])
    torch.testing.assert_close(both, parts)  # micro-batches and ranks may be summed as sketches
    assert not torch.equal(CountSketch(64, 3, 6).add(torch.zeros(64), a), s.add(torch.zeros(64), a))


def test_one_sgd_step_changes_target_loss_by_minus_lr_inner_product(tiny_data_dir):
    """Finite difference: after theta -= lr g_i, L_target changes by ~ -lr <g_target, g_i>, and the
    probe's sketched <g_i, g_target> (d = 2^16) agrees with the exact one within 3x its error bound."""
    model = _model()
    spec = ProbeSpec(samples_per_domain=8, target_samples=8, sketch_dim=1 << 16, tasks="each")
    probe = _probe(tiny_data_dir, spec)
    result = probe.measure(model, step=3)
    batches = probe._batches(3)
    k = len(probe.domains)
    tok = [torch.from_numpy(probe.data.read(split, ids, blocks).astype(np.int64)) for split, ids, blocks in batches]
    lr = 1e-2
    for i in range(k):
        g_i, _ = _exact_grad(model, tok[i])
        t = i  # task i = domain i's validation set
        g_t, before = _exact_grad(model, tok[k + t])
        inner = float(g_t @ g_i)
        trial = _model()
        with torch.no_grad():
            offset = 0
            for p in trial.parameters():
                n = p.numel()
                p -= lr * g_i[offset:offset + n].view_as(p).float()
                offset += n
            after = per_token_loss(trial(tok[k + t][:, :-1]), tok[k + t][:, 1:]).mean()
        change = float(after - before.detach())
        assert change == pytest.approx(-lr * inner, rel=0.1), (i, change, -lr * inner)
        bound = 3 * sketch_error_bound(spec.sketch_dim) * float(g_t.norm() * g_i.norm())
        assert abs(result.task_inner[i, t] - inner) <= bound, (result.task_inner[i, t], inner, bound)
        assert result.gram[i, i] == pytest.approx(float(g_i @ g_i), rel=3 * sketch_error_bound(spec.sketch_dim))


def test_probe_is_deterministic_and_leaves_training_state_alone(tiny_data_dir):
    model = _model()
    for p in model.parameters():
        p.grad = torch.full_like(p, 0.5)  # the training step's gradient, which the probe must not touch
    rng_before = torch.get_rng_state()
    spec = ProbeSpec(samples_per_domain=4, target_samples=4, sketch_dim=512, tasks="target")
    first = _probe(tiny_data_dir, spec).measure(model, step=10)
    again = _probe(tiny_data_dir, spec).measure(model, step=10)
    other = _probe(tiny_data_dir, spec).measure(model, step=11)
    assert np.array_equal(first.gram, again.gram) and np.array_equal(first.target_inner, again.target_inner)
    assert not np.array_equal(first.gram, other.gram)  # another step: other probe blocks and projection
    assert all(torch.equal(p.grad, torch.full_like(p, 0.5)) for p in model.parameters())
    assert torch.equal(torch.get_rng_state(), rng_before)
    assert first.gram.shape == (3, 3) and first.target_inner.shape == (3,)
    assert np.all(np.diag(first.gram) > 0)


def test_adam_preconditioner_divides_the_target_side(tiny_data_dir):
    from mixtrain.train.grad_probe import adam_preconditioner

    model = _model()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    assert adam_preconditioner(opt, list(model.parameters())) is None  # no second moment yet: identity
    tokens = torch.randint(0, 320, (4, SEQ + 1))
    per_token_loss(model(tokens[:, :-1]), tokens[:, 1:]).mean().backward()
    opt.step()
    pre = adam_preconditioner(opt, list(model.parameters()))
    v = opt.state[next(model.parameters())]["exp_avg_sq"] / (1 - 0.999)
    torch.testing.assert_close(pre[0], 1 / (v.sqrt() + 1e-8))
    spec = ProbeSpec(samples_per_domain=2, target_samples=2, sketch_dim=256, tasks="each", precondition="adam")
    plain = ProbeSpec(samples_per_domain=2, target_samples=2, sketch_dim=256, tasks="each")
    a = _probe(tiny_data_dir, spec).measure(model, step=1, optimizer=opt)
    b = _probe(tiny_data_dir, plain).measure(model, step=1, optimizer=opt)
    assert np.array_equal(a.gram, b.gram)  # only the target side is preconditioned
    assert not np.allclose(a.task_inner, b.task_inner)


def test_probe_spec_refuses_unknown_settings():
    with pytest.raises(ValueError, match="tasks"):
        ProbeSpec(tasks="all")
    with pytest.raises(ValueError, match="sketch_dim"):
        ProbeSpec(sketch_dim=0)
