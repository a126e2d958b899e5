"""trainable_layers: only the top blocks (and what follows them) change; the embeddings and lower blocks
keep their weights, for encoders and decoders, with and without gradient checkpointing."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from app.training.core.freeze import block_stack, freeze_lower_layers
from app.training.core.tiny import tiny_llama
from app.training.reward.config import RewardConfig
from app.training.reward.trainer import train_reward_model


def _bert(layers: int = 4):
    from transformers import AutoTokenizer, BertConfig, BertModel

    from app.training.core.default_models import minilm_path

    tokenizer = AutoTokenizer.from_pretrained(str(minilm_path()))
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    return BertModel(config), tokenizer


def _config(**overrides: object) -> RewardConfig:
    values = {
        "learning_rate": 1e-3,
        "epochs": 1,
        "batch_size": 8,
        "checkpoint_every": 0,
        "validation_fraction": 0.2,
        "num_threads": 1,
    }
    return RewardConfig(**{**values, **overrides})


def _changed(before: dict[str, torch.Tensor], model: nn.Module) -> set[str]:
    return {name for name, p in model.named_parameters() if not torch.equal(p.detach(), before[name])}


@pytest.mark.parametrize("checkpointing", [False, True])
def test_an_encoder_trains_only_its_top_layers(tmp_path, preferences, reporter_cls, checkpointing) -> None:
    bert, tokenizer = _bert(layers=4)
    before = {name: p.detach().clone() for name, p in bert.named_parameters()}
    reporter = reporter_cls()
    result = train_reward_model(
        preferences(120),
        _config(trainable_layers=2, gradient_checkpointing=checkpointing),
        tmp_path / "rm",
        reporter=reporter,
        backbone=bert,
        tokenizer=tokenizer,
    )
    changed = _changed(before, result.model.backbone)
    lower = {n for n in before if n.startswith(("embeddings.", "encoder.layer.0.", "encoder.layer.1."))}
    upper = {n for n in before if n.startswith(("encoder.layer.2.", "encoder.layer.3."))}
    assert lower and not (changed & lower)  # the embeddings and the two lower blocks kept their weights
    assert upper <= changed  # every weight of the two top blocks trained
    assert any("training the top 2 of 4 backbone layers" in line for line in reporter.logs)
    assert result.metrics["val_accuracy"] > 0.5


def test_a_decoder_keeps_its_embeddings_and_lower_block(tmp_path, smollm2_tokenizer, preferences) -> None:
    backbone = tiny_llama(smollm2_tokenizer, num_layers=2)
    before = {name: p.detach().clone() for name, p in backbone.model.named_parameters()}
    result = train_reward_model(
        preferences(80),
        _config(trainable_layers=1),
        tmp_path / "rm",
        backbone=backbone,
        tokenizer=smollm2_tokenizer,
    )
    changed = _changed(before, result.model.backbone)
    assert not any(n.startswith(("embed_tokens.", "layers.0.")) for n in changed)
    assert {n for n in before if n.startswith("layers.1.")} <= changed
    assert "norm.weight" in changed  # the final norm follows the stack: it trains with the top block


def test_the_stack_is_found_by_structure_and_depth_or_zero_changes_nothing() -> None:
    bert, _ = _bert(layers=3)
    name, stack = block_stack(bert)
    assert name == "encoder.layer" and len(stack) == 3
    assert freeze_lower_layers(bert, 0) is None and freeze_lower_layers(bert, 3) is None
    assert all(p.requires_grad for p in bert.parameters())
    frozen = freeze_lower_layers(bert, 1)
    assert frozen is not None and frozen.blocks == 3 and frozen.trained_blocks == 1
    trained = sum(p.numel() for p in bert.parameters() if p.requires_grad)
    assert trained == frozen.trained_parameters and frozen.frozen_parameters + trained == sum(
        p.numel() for p in bert.parameters()
    )


def test_a_model_without_a_layer_stack_and_a_negative_count_are_refused() -> None:
    with pytest.raises(ValueError, match="no stack of layers"):
        block_stack(nn.Linear(4, 4))
    with pytest.raises(ValueError, match="no stack of layers"):
        freeze_lower_layers(nn.Linear(4, 4), 1)
    assert freeze_lower_layers(nn.Linear(4, 4), 0) is None  # the default never looks for a stack
    with pytest.raises(ValueError, match="trainable_layers"):
        RewardConfig(trainable_layers=-1)
