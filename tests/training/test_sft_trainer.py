"""SFT learns (validation loss on held-out prompts goes down), saves a merged policy that loads and
generates, returns a finished run's card, and resumes after a stop."""

from __future__ import annotations

import random

import pytest
import torch

from app.training.core.card import default_checkpoint_path, read_card
from app.training.core.loop import TrainingStopped
from app.training.core.tiny import tiny_llama
from app.training.sft.config import SFTConfig
from app.training.sft.data import SFTExample
from app.training.sft.trainer import train_sft
from tests.training.conftest import GOOD, OBJECTS, VERBS


def demonstrations(n: int, seed: int = 0) -> list[SFTExample]:
    """``n`` conversations over distinct prompts, answered in two fixed polite styles."""
    rng = random.Random(seed)
    pairs = rng.sample([(v, o) for v in VERBS for o in OBJECTS], n)
    return [
        SFTExample(
            messages=(
                {"role": "user", "content": f"How do I {v} {o}?"},
                {"role": "assistant", "content": rng.choice(GOOD).format(v=v, o=o)},
            ),
            kind="safe_answer" if i % 10 == 0 else "ideal",
            prompt_key=f"{v}/{o}",
            id=f"d{i}",
        )
        for i, (v, o) in enumerate(pairs)
    ]


def policy(tokenizer, seed: int = 0) -> torch.nn.Module:
    """A tiny random Llama whose logits can move: as built, its tied embeddings (std 0.02) cap every
    logit near 0, so frozen-embedding LoRA could barely leave the uniform distribution; a real
    policy's embeddings are not like that. Std 0.3 gives the adapters something to steer."""
    model = tiny_llama(tokenizer, seed=seed)
    with torch.no_grad():
        model.model.embed_tokens.weight.normal_(0.0, 0.3, generator=torch.Generator().manual_seed(seed))
    return model


def config(**overrides: object) -> SFTConfig:
    values = {
        "learning_rate": 1e-2,
        "epochs": 3,
        "batch_size": 8,
        "validation_fraction": 0.2,
        "log_every": 1,
        "checkpoint_every": 0,
        "num_threads": 1,
        "lora_r": 8,
        "lora_alpha": 16,
        "max_length": 128,
        "warmup_ratio": 0.0,
    }
    return SFTConfig(**{**values, **overrides})


def test_sft_on_50_demonstrations_lowers_the_validation_loss_and_saves_a_merged_policy(
    tmp_path, smollm2_tokenizer, reporter_cls
) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from app.generation import SamplingParams, TransformersBackend

    model = policy(smollm2_tokenizer)
    frozen = {n: p.detach().clone() for n, p in model.named_parameters()}
    reporter = reporter_cls()
    result = train_sft(
        demonstrations(50), config(), tmp_path / "sft", reporter=reporter, model=model, tokenizer=smollm2_tokenizer
    )

    metrics = result.metrics
    assert metrics["validation_examples"] >= 5 and metrics["train_examples"] + metrics["validation_examples"] == 50
    assert metrics["val_loss"] < metrics["val_loss_before"] - 1.0, metrics
    losses = [v for _, n, v in reporter.metrics if n == "train_loss"]
    assert losses[-1] < losses[0]
    assert {"val_loss", "val_loss_before", "learning_rate"} <= {n for _, n, _ in reporter.metrics}
    merged = dict(result.model.named_parameters())
    changed = [n for n, p in merged.items() if n in frozen and not torch.equal(p.detach(), frozen[n])]
    assert changed and not any("lora" in n for n in merged)  # adapters merged into the plain weights

    card = read_card(tmp_path / "sft")
    assert card["kind"] == "sft" and card["metrics"] == metrics and card["data"]["kinds"]["safe_answer"] == 5
    assert not default_checkpoint_path(tmp_path / "sft").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sft"]

    loaded = AutoModelForCausalLM.from_pretrained(str(tmp_path / "sft"))
    for name, param in loaded.named_parameters():
        torch.testing.assert_close(param, merged[name].detach())
    backend = TransformersBackend(loaded, AutoTokenizer.from_pretrained(str(tmp_path / "sft")), batch_size=2)
    out = backend.generate(
        [[{"role": "user", "content": "How do I fix a chair?"}]], SamplingParams(temperature=0.0, max_new_tokens=12)
    )
    assert len(out) == 1 and out[0].token_count > 0

    again = train_sft(
        demonstrations(50), config(), tmp_path / "sft", model=policy(smollm2_tokenizer), tokenizer=smollm2_tokenizer
    )
    assert again.model is None and again.metrics == metrics  # the finished run's card, no training


def test_a_stopped_run_resumes_from_its_checkpoint(tmp_path, smollm2_tokenizer, reporter_cls) -> None:
    examples, cfg = demonstrations(24, seed=1), config(epochs=2, validation_fraction=0.0)
    with pytest.raises(TrainingStopped) as stopped:
        train_sft(
            examples,
            cfg,
            tmp_path / "sft",
            reporter=reporter_cls(stop_at=2),
            model=policy(smollm2_tokenizer),
            tokenizer=smollm2_tokenizer,
        )
    assert stopped.value.step == 2 and default_checkpoint_path(tmp_path / "sft").exists()
    assert not (tmp_path / "sft").exists()

    result = train_sft(
        examples, cfg, tmp_path / "sft", model=policy(smollm2_tokenizer, seed=5), tokenizer=smollm2_tokenizer
    )
    assert result.resumed_from == 2 and result.steps == 6
    assert "val_loss" not in result.metrics  # no validation split asked for
    assert not default_checkpoint_path(tmp_path / "sft").exists()


def test_full_fine_tuning_without_lora_also_learns(tmp_path, smollm2_tokenizer) -> None:
    result = train_sft(
        demonstrations(30, seed=2),
        config(lora=False, learning_rate=3e-3, epochs=2),
        tmp_path / "full",
        model=tiny_llama(smollm2_tokenizer),
        tokenizer=smollm2_tokenizer,
    )
    assert result.metrics["val_loss"] < result.metrics["val_loss_before"]
