"""Exports proven where they are used: each TRL-facing export, read with ``datasets.load_dataset("json")``
and nothing else, trains TRL's own trainer for a few steps on a tiny model.

- ``trl`` (strings) and ``trl_conversational`` (message lists) → ``RewardTrainer`` and ``DPOTrainer``;
- ``sft`` (``{"messages": […]}``) → ``SFTTrainer``.

No conversion code stands between the file and the trainer: if TRL stops reading a format, this fails.
"""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path
from typing import Any

import pytest
import torch

from app.export.filters import parse_params
from app.export.service import export_to_folder
from tests.export.data import annotators, demonstration
from tests.export.test_roundtrip import CONVERSATIONS
from tests.export.test_roundtrip import _seed as seed_preferences

STEPS = 2


def seed(db) -> None:
    """The round-trip tests' preferences (one per conversation, and ties) and a demonstration per prompt."""
    writer = annotators(1)[0]
    for i, pair in enumerate(seed_preferences(db)):
        demonstration(db, writer, pair.prompt_id, f"A written answer {i}.")


def exported(db, folder: Path, fmt: str) -> Any:
    """The export as TRL's users load it."""
    from datasets import load_dataset

    result = export_to_folder(db, parse_params({"format": fmt}), folder)
    return load_dataset("json", data_files=str(folder / result["file"]), split="train")


def tokenizer() -> Any:
    """SmolLM2's tokenizer (chat template included) with a pad token apart from EOS, as TRL's docs advise."""
    from app.training.core.default_models import load_smollm2_tokenizer

    tok = load_smollm2_tokenizer(Path(tempfile.gettempdir()) / "rlhf-smollm2-tokenizer")
    tok.add_special_tokens({"pad_token": "<|pad|>"})
    return tok


def tiny_config(tok: Any, **extra: Any) -> Any:
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
        **extra,
    )


def trainer_args(config_cls: type, folder: Path, **extra: Any) -> Any:
    return config_cls(
        output_dir=str(folder),
        max_steps=STEPS,
        per_device_train_batch_size=2,
        learning_rate=1e-2,
        report_to="none",
        save_strategy="no",
        logging_steps=1,
        use_cpu=True,
        disable_tqdm=True,
        bf16=False,
        **extra,
    )


def train(trainer: Any, model: torch.nn.Module) -> None:
    """Run the trainer; it must take every step and move the weights."""
    before = [p.detach().clone() for p in model.parameters()]
    assert trainer.train().global_step == STEPS
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True)), "nothing changed"


@pytest.mark.parametrize("fmt", ["trl", "trl_conversational"])
def test_the_preference_export_trains_trls_reward_trainer(db, tmp_path, fmt):
    from transformers import LlamaForSequenceClassification
    from trl import RewardConfig, RewardTrainer

    seed(db)
    dataset = exported(db, tmp_path / "export", fmt)
    assert dataset.column_names == ["prompt", "chosen", "rejected"] and len(dataset) == len(CONVERSATIONS)
    tok = tokenizer()
    torch.manual_seed(0)
    model = LlamaForSequenceClassification(tiny_config(tok, num_labels=1))
    args = trainer_args(RewardConfig, tmp_path / "trl")
    train(RewardTrainer(model=model, args=args, train_dataset=dataset, processing_class=tok), model)


@pytest.mark.parametrize("fmt", ["trl", "trl_conversational"])
def test_the_preference_export_trains_trls_dpo_trainer(db, tmp_path, fmt):
    from transformers import LlamaForCausalLM
    from trl import DPOConfig, DPOTrainer

    seed(db)
    dataset = exported(db, tmp_path / "export", fmt)
    tok = tokenizer()
    torch.manual_seed(0)
    model = LlamaForCausalLM(tiny_config(tok))
    reference = copy.deepcopy(model)  # TRL would load one from the model's hub id, which a built model has not
    args = trainer_args(DPOConfig, tmp_path / "trl", max_length=128)
    trainer = DPOTrainer(model=model, ref_model=reference, args=args, train_dataset=dataset, processing_class=tok)
    train(trainer, model)


def test_the_sft_export_trains_trls_sft_trainer(db, tmp_path):
    from transformers import LlamaForCausalLM
    from trl import SFTConfig, SFTTrainer

    seed(db)
    dataset = exported(db, tmp_path / "export", "sft")
    assert "messages" in dataset.column_names and len(dataset) == len(CONVERSATIONS)
    tok = tokenizer()
    torch.manual_seed(0)
    model = LlamaForCausalLM(tiny_config(tok))
    args = trainer_args(SFTConfig, tmp_path / "trl", max_length=128)
    train(SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tok), model)
