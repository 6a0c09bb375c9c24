"""Tests for mixtrain.model.gpt: shapes, causality, tying, GQA, loss helper, learning, sizes."""

from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from mixtrain.model.gpt import GPT, GPTConfig, peak_flops_per_s, per_token_loss

CONF = Path(__file__).resolve().parents[2] / "conf" / "model"


def _tiny(**kw):
    torch.manual_seed(0)
    return GPT(GPTConfig(**{"vocab_size": 97, "seq_len": 16, "n_layer": 2, "n_head": 4, "d_model": 32, **kw}))


def test_shapes_and_causality():
    model = _tiny().eval()
    x = torch.randint(0, 97, (2, 16))
    logits = model(x)
    assert logits.shape == (2, 16, 97)
    y = x.clone()
    y[:, 10:] = (y[:, 10:] + 1) % 97  # change the future
    assert torch.allclose(model(y)[:, :10], logits[:, :10], atol=1e-5)
    assert not torch.allclose(model(y)[:, 10:], logits[:, 10:], atol=1e-5)


def test_tying_and_gqa():
    tied, untied = _tiny(), _tiny(tie_embeddings=False)
    assert tied.head.weight.data_ptr() == tied.embed.weight.data_ptr()
    assert untied.num_params(False) == tied.num_params(False) + 97 * 32
    gqa = _tiny(n_kv_head=2)
    assert gqa(torch.randint(0, 97, (1, 8))).shape == (1, 8, 97)
    with pytest.raises(ValueError, match="n_kv_head"):
        GPTConfig(vocab_size=10, n_head=4, n_kv_head=3, d_model=32)


def test_per_token_loss_matches_cross_entropy():
    logits, targets = torch.randn(2, 5, 11), torch.randint(0, 11, (2, 5))
    per = per_token_loss(logits, targets)
    assert per.shape == (2, 5) and per.dtype == torch.float32
    assert torch.allclose(per.mean(), torch.nn.functional.cross_entropy(logits.reshape(10, 11), targets.reshape(10)))


def test_a_few_steps_learn_a_repeated_sequence():
    model = _tiny()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    seq = torch.arange(17).remainder(7).unsqueeze(0).repeat(4, 1)
    losses = []
    for _ in range(30):
        loss = per_token_loss(model(seq[:, :-1]), seq[:, 1:]).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_activation_checkpointing_gives_same_loss_and_grads():
    x = torch.randint(0, 97, (2, 16))
    grads = []
    for ckpt in (False, True):
        model = _tiny(activation_checkpointing=ckpt).train()
        loss = per_token_loss(model(x[:, :-1]), x[:, 1:]).mean()
        loss.backward()
        grads.append((loss.detach(), model.blocks[0].attn.qkv.weight.grad.clone()))
    assert torch.allclose(grads[0][0], grads[1][0]) and torch.allclose(grads[0][1], grads[1][1], atol=1e-6)


@pytest.mark.parametrize("name, low, high", [("small", 100e6, 140e6), ("medium", 300e6, 400e6)])
def test_config_sizes(name, low, high):
    cfg = OmegaConf.to_container(OmegaConf.load(CONF / f"{name}.yaml"))
    cfg.update(vocab_size=32000, seq_len=2048)
    with torch.device("meta"):
        model = GPT(GPTConfig(**cfg))
    n = model.num_params(non_embedding=False)
    assert low <= n <= high
    assert model.flops_per_token(16) == pytest.approx(6 * n, rel=0.01)  # short sequences: ~6N


def test_peak_flops_lookup():
    assert peak_flops_per_s("NVIDIA H100 80GB HBM3") == 989e12
    assert peak_flops_per_s("NVIDIA H100 PCIe") == 756e12
    assert peak_flops_per_s("cpu") is None
