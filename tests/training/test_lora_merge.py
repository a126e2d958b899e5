"""Sampling with the LoRA adapters merged computes the unmerged policy, and leaves the base weights exactly
as they were."""

from __future__ import annotations

import torch
from test_ppo_trainer import tiny_policy, wordlevel_tokenizer

from app.training.core.lora import adapters_merged, add_lora
from app.training.ppo.config import PPOConfig


def adapted(targets: str = "q_proj,v_proj"):
    tok = wordlevel_tokenizer()
    lm = add_lora(tiny_policy(tok), PPOConfig(lora_target_modules=targets))
    with torch.no_grad():
        for name, p in lm.named_parameters():
            if "lora_B" in name:
                p.normal_(0.0, 0.3)  # away from the zero init: the adapters change the output
    return lm.eval()


def test_the_merged_model_computes_what_the_adapters_compute_and_the_base_comes_back_exactly() -> None:
    lm = adapted()
    ids = torch.randint(3, 30, (3, 9), generator=torch.Generator().manual_seed(0))
    base = {name: p.detach().clone() for name, p in lm.named_parameters() if "lora_" not in name}
    with torch.no_grad():
        before = lm(input_ids=ids).logits
        with lm.disable_adapter():
            plain = lm(input_ids=ids).logits
        assert (before - plain).abs().max() > 1e-2  # the adapters matter
        with adapters_merged(lm):
            merged = lm(input_ids=ids).logits
            assert any(not torch.equal(p, base[n]) for n, p in lm.named_parameters() if n in base)
        after = lm(input_ids=ids).logits
    torch.testing.assert_close(merged, before, atol=1e-5, rtol=1e-5)
    assert all(torch.equal(p, base[name]) for name, p in lm.named_parameters() if name in base)
    assert torch.equal(after, before)


def test_a_model_without_adapters_is_left_alone() -> None:
    lm = tiny_policy(wordlevel_tokenizer())
    weights = {name: p.detach().clone() for name, p in lm.named_parameters()}
    with adapters_merged(lm):
        pass
    assert all(torch.equal(p, weights[name]) for name, p in lm.named_parameters())
