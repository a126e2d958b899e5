"""A LoRA-wrapped policy on oneDNN's linear layers computes what the plain one does, and merges back."""

from __future__ import annotations

import copy

import pytest
import torch

from app.kernels import linear as kernels
from app.kernels.linear import FastLinear
from app.training.core.config import LoRASettings
from app.training.core.lora import add_lora, merge_adapters
from app.training.core.tiny import tiny_llama


def _lora(lm: torch.nn.Module) -> torch.nn.Module:
    torch.manual_seed(0)
    wrapped = add_lora(lm, LoRASettings(lora_dropout=0.0))
    torch.manual_seed(1)
    for name, parameter in wrapped.named_parameters():
        if "lora_" in name:  # B starts at zero: give the adapters something to add
            parameter.data.normal_(0.0, 0.05)
    return wrapped


def test_lora_policy_on_fast_linears_matches_the_plain_one(smollm2_tokenizer, monkeypatch: pytest.MonkeyPatch) -> None:
    base = tiny_llama(smollm2_tokenizer, hidden_size=32, num_layers=2, seed=3)
    ids = torch.randint(0, len(smollm2_tokenizer), (2, 9))

    monkeypatch.setattr(kernels, "onednn_is_faster", lambda: False)
    plain = _lora(copy.deepcopy(base))
    monkeypatch.setattr(kernels, "onednn_is_faster", lambda: True)
    kernels.use_fast_linears(base)
    fast = _lora(base)

    swapped = [m for m in fast.modules() if type(m) is FastLinear]
    assert len(swapped) == len([m for m in plain.modules() if type(m) is torch.nn.Linear]) > 0
    trained = [p for p in fast.parameters() if p.requires_grad]
    assert trained and all(p.grad is None for p in trained)

    for model in (plain, fast):
        model(input_ids=ids).logits.square().mean().backward()
    torch.testing.assert_close(fast(input_ids=ids).logits, plain(input_ids=ids).logits, rtol=1e-4, atol=1e-5)
    for (name, p), q in zip(fast.named_parameters(), plain.parameters(), strict=True):
        assert (p.grad is None) == (q.grad is None), name  # frozen base weights get no gradient either way
        if p.grad is not None:
            torch.testing.assert_close(p.grad, q.grad, rtol=1e-3, atol=1e-6)

    merged_fast, merged_plain = merge_adapters(fast), merge_adapters(plain)
    assert any(type(m) is FastLinear for m in merged_fast.modules())
    torch.testing.assert_close(
        merged_fast(input_ids=ids).logits, merged_plain(input_ids=ids).logits, rtol=1e-4, atol=1e-5
    )
