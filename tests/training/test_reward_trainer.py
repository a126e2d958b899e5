"""The reward trainer learns, saves a model that scores identically after reloading, and resumes."""

from __future__ import annotations

import json

import pytest
import torch

from app.training.core.card import default_checkpoint_path, read_card
from app.training.core.loop import TrainingStopped
from app.training.core.tiny import tiny_llama
from app.training.reward.config import RewardConfig
from app.training.reward.scoring import RewardScorer
from app.training.reward.trainer import train_reward_model


def config(**overrides: object) -> RewardConfig:
    values = {
        "learning_rate": 1e-3,
        "epochs": 2,
        "min_steps": 0,  # the tests count steps by epochs (test_min_steps covers the floor)
        "batch_size": 8,
        "log_every": 5,
        "checkpoint_every": 0,
        "validation_fraction": 0.2,
        "margin": 0.5,
        "num_threads": 1,
    }
    return RewardConfig(**{**values, **overrides})


def held_out_pairs(preferences) -> list[tuple[str, str]]:
    fresh = preferences(8, seed=99)
    return [(e.prompt, e.chosen) for e in fresh] + [(e.prompt, e.rejected) for e in fresh]


def test_tiny_llama_learns_the_preference_and_reports(tmp_path, smollm2_tokenizer, preferences, reporter_cls) -> None:
    backbone = tiny_llama(smollm2_tokenizer)
    before = {name: p.detach().clone() for name, p in backbone.model.named_parameters()}
    reporter = reporter_cls()
    examples = preferences(240)
    result = train_reward_model(
        examples, config(), tmp_path / "rm", reporter=reporter, backbone=backbone, tokenizer=smollm2_tokenizer
    )

    assert result.metrics["val_accuracy"] >= 0.9
    assert result.metrics["val_loss"] < 0.3
    unchanged = [n for n, p in result.model.backbone.named_parameters() if torch.equal(p.detach(), before[n])]
    assert unchanged == []
    names = {name for _, name, _ in reporter.metrics}
    assert {"train_loss", "train_accuracy", "train_margin", "learning_rate", "val_accuracy", "val_loss"} <= names
    first_loss = next(v for _, n, v in reporter.metrics if n == "train_loss")
    last_loss = [v for _, n, v in reporter.metrics if n == "train_loss"][-1]
    assert last_loss < first_loss
    assert reporter.progress_calls[-1] == 1.0

    card = read_card(tmp_path / "rm")
    data = card["data"]
    assert data["examples"] == 240 and data["train_examples"] + data["validation_examples"] == 240
    assert data["validation_prompts"] > 0 and len(data["ids_sha256"]) == 64
    assert card["metrics"] == result.metrics and card["steps"] == result.steps
    assert json.loads((tmp_path / "rm" / "head.json").read_text())["pooling"] == "last"
    assert not default_checkpoint_path(tmp_path / "rm").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["rm"]  # no temporary folder left behind

    again = train_reward_model(
        examples, config(), tmp_path / "rm", backbone=tiny_llama(smollm2_tokenizer), tokenizer=smollm2_tokenizer
    )
    assert again.model is None and again.metrics == result.metrics  # finished run: card returned, no training

    scorer = RewardScorer(tmp_path / "rm", device="cpu", batch_size=4)
    pairs = held_out_pairs(preferences)
    scores = scorer.score(pairs)
    assert scores == RewardScorer(tmp_path / "rm", device="cpu", batch_size=4).score(pairs)  # deterministic
    torch.testing.assert_close(
        torch.tensor(RewardScorer(tmp_path / "rm", device="cpu", batch_size=16).score(pairs)), torch.tensor(scores)
    )  # batching changes only rounding
    assert all(c > r for c, r in zip(scores[:8], scores[8:], strict=True))
    assert scorer.target == "pairwise" and scorer.log_odds(scores[:3]) == scores[:3]  # already log-odds
    in_memory = RewardScorer.__new__(RewardScorer)
    in_memory.__dict__.update(scorer.__dict__, model=result.model.eval())
    torch.testing.assert_close(torch.tensor(in_memory.score(pairs)), torch.tensor(scores))


def test_a_stopped_run_resumes_and_ends_where_an_uninterrupted_one_does(
    tmp_path, smollm2_tokenizer, preferences, reporter_cls
) -> None:
    examples, cfg = preferences(160), config(log_every=1)
    straight = train_reward_model(
        examples, cfg, tmp_path / "straight", backbone=tiny_llama(smollm2_tokenizer), tokenizer=smollm2_tokenizer
    )

    with pytest.raises(TrainingStopped) as stopped:
        train_reward_model(
            examples,
            cfg,
            tmp_path / "resumed",
            reporter=reporter_cls(stop_at=13),
            backbone=tiny_llama(smollm2_tokenizer),
            tokenizer=smollm2_tokenizer,
        )
    assert stopped.value.step == 13
    assert not (tmp_path / "resumed").exists() and default_checkpoint_path(tmp_path / "resumed").exists()

    reporter = reporter_cls()
    resumed = train_reward_model(
        examples,
        cfg,
        tmp_path / "resumed",
        reporter=reporter,
        backbone=tiny_llama(smollm2_tokenizer, seed=5),
        tokenizer=smollm2_tokenizer,
    )
    assert resumed.resumed_from == 13 and resumed.steps == straight.steps
    assert min(step for step, name, _ in reporter.metrics if name == "train_loss") == 14
    pairs = held_out_pairs(preferences)
    torch.testing.assert_close(
        torch.tensor(RewardScorer(tmp_path / "resumed", device="cpu").score(pairs)),
        torch.tensor(RewardScorer(tmp_path / "straight", device="cpu").score(pairs)),
    )


def test_a_crashed_run_resumes_from_its_last_periodic_checkpoint(
    tmp_path, smollm2_tokenizer, preferences, reporter_cls
) -> None:
    examples, cfg = preferences(160), config(checkpoint_every=10, log_every=5)
    crashed = reporter_cls(fail_at=15)
    with pytest.raises(RuntimeError, match="simulated crash"):
        train_reward_model(
            examples,
            cfg,
            tmp_path / "rm",
            reporter=crashed,
            backbone=tiny_llama(smollm2_tokenizer),
            tokenizer=smollm2_tokenizer,
        )
    # The curves up to the checkpoint were flushed before it was written: a resume from it leaves no gap.
    assert len(crashed.flushed_at) == 1
    assert {step for step, _, _ in crashed.metrics[: crashed.flushed_at[0]]} == {5, 10}
    result = train_reward_model(
        examples, cfg, tmp_path / "rm", backbone=tiny_llama(smollm2_tokenizer), tokenizer=smollm2_tokenizer
    )
    assert result.resumed_from == 10 and result.steps == 2 * -(-result.card["data"]["train_examples"] // 8)


def test_a_checkpoint_of_other_data_is_not_resumed(tmp_path, smollm2_tokenizer, preferences, reporter_cls) -> None:
    cfg = config(epochs=1)
    with pytest.raises(TrainingStopped):
        train_reward_model(
            preferences(80),
            cfg,
            tmp_path / "rm",
            reporter=reporter_cls(stop_at=1),
            backbone=tiny_llama(smollm2_tokenizer),
            tokenizer=smollm2_tokenizer,
        )
    reporter = reporter_cls()
    result = train_reward_model(
        preferences(96),
        cfg,
        tmp_path / "rm",
        reporter=reporter,
        backbone=tiny_llama(smollm2_tokenizer),
        tokenizer=smollm2_tokenizer,
    )
    assert result.resumed_from == 0 and any("ignoring a checkpoint" in line for line in reporter.logs)


def test_an_encoder_backbone_learns_with_mean_pooling(tmp_path, preferences) -> None:
    from transformers import AutoTokenizer, BertConfig, BertModel

    from app.training.core.default_models import minilm_path

    tokenizer = AutoTokenizer.from_pretrained(str(minilm_path()))
    torch.manual_seed(0)
    bert = BertModel(
        BertConfig(
            vocab_size=tokenizer.vocab_size,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=64,
            max_position_embeddings=128,
        )
    )
    result = train_reward_model(preferences(200), config(), tmp_path / "rm", backbone=bert, tokenizer=tokenizer)
    assert result.metrics["val_accuracy"] >= 0.9
    meta = json.loads((tmp_path / "rm" / "head.json").read_text())
    assert meta["pooling"] == "mean" and meta["encoder"] is True and meta["max_length"] == 128
    scores = RewardScorer(tmp_path / "rm", device="cpu").score(held_out_pairs(preferences))
    assert all(c > r for c, r in zip(scores[:8], scores[8:], strict=True))


def test_resume_is_exact_even_with_dropout_on(tmp_path, preferences, reporter_cls) -> None:
    """The checkpoint carries the RNG state, so dropout masks after a resume match an unbroken run's."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    from app.training.core.default_models import minilm_path

    tokenizer = AutoTokenizer.from_pretrained(str(minilm_path()))

    def bert() -> BertModel:
        torch.manual_seed(0)
        return BertModel(
            BertConfig(
                vocab_size=tokenizer.vocab_size,
                hidden_size=32,
                num_hidden_layers=1,
                num_attention_heads=2,
                intermediate_size=64,
                max_position_embeddings=128,
                hidden_dropout_prob=0.3,
            )
        )

    examples, cfg = preferences(96), config(disable_dropout=False, log_every=1)
    train_reward_model(examples, cfg, tmp_path / "straight", backbone=bert(), tokenizer=tokenizer)
    with pytest.raises(TrainingStopped):
        train_reward_model(
            examples, cfg, tmp_path / "resumed", reporter=reporter_cls(stop_at=7), backbone=bert(), tokenizer=tokenizer
        )
    assert (
        train_reward_model(examples, cfg, tmp_path / "resumed", backbone=bert(), tokenizer=tokenizer).resumed_from == 7
    )
    pairs = held_out_pairs(preferences)
    assert RewardScorer(tmp_path / "resumed", device="cpu").score(pairs) == RewardScorer(
        tmp_path / "straight", device="cpu"
    ).score(pairs)
