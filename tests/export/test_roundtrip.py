"""Round trips with the ecosystem: our TRL export trains TRL's RewardTrainer, and an HH (or TRL)
export imported back exports the very same pairs."""

from __future__ import annotations

import importlib.util
import tempfile
from pathlib import Path

import pytest
from sqlalchemy import select

from app.export.filters import parse_params
from app.export.service import export_to_folder
from app.importing.service import import_preferences
from app.prompts.models import PromptSet
from tests.export.data import annotators, judged_pair

CONVERSATIONS = [
    [{"role": "user", "content": "How do I boil an egg?"}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Capital of France?"}],
    [
        {"role": "user", "content": "Name a fruit."},
        {"role": "assistant", "content": "Apple."},
        {"role": "user", "content": "Another one?"},
    ],
    [{"role": "user", "content": 'Ünïcödé & <b>markup</b> "quotes"?'}],
]


def _seed(db) -> None:
    users = annotators(2)
    for i, messages in enumerate(CONVERSATIONS):
        judged_pair(
            db,
            messages=messages,
            a=f"Good answer {i}.\n\nWith a second paragraph.",
            b=f"Bad answer {i}.",
            verdicts=[(users[0], "a" if i % 2 else "b"), (users[1], "tie")],
        )


def _export(db, folder: Path, fmt: str, **filters: object) -> list[str]:
    result = export_to_folder(db, parse_params({"format": fmt, **filters}), folder)
    return (folder / result["file"]).read_text(encoding="utf-8").splitlines()


@pytest.mark.parametrize("fmt", ["hh", "trl", "trl_conversational"])
def test_export_import_export_gives_identical_pairs(db, tmp_path, fmt):
    _seed(db)
    first = _export(db, tmp_path / "first", fmt)
    assert len(first) == len(CONVERSATIONS)  # one preference each; the ties are not preferences
    source = {"hh": "hh", "trl": "trl", "trl_conversational": "trl"}[fmt]
    with (tmp_path / "first").glob("*.jsonl").__next__().open("rb") as stream:
        report = import_preferences(db, stream=stream, fmt=source, name="roundtrip", set_name="round trip")
    assert report.pairs == len(first)
    set_id = db.scalar(select(PromptSet.id).where(PromptSet.name == "round trip"))
    again = _export(db, tmp_path / "again", fmt, prompt_set_id=set_id)
    assert again == first


@pytest.mark.skipif(importlib.util.find_spec("trl") is None, reason="trl is not installed (pip install -e '.[dev]')")
def test_trl_export_trains_trls_reward_trainer_for_a_step(db, tmp_path):
    """Acceptance: export TRL format → datasets.load_dataset('json', …) → RewardTrainer takes a step."""
    import torch
    from datasets import load_dataset
    from transformers import LlamaConfig, LlamaForSequenceClassification
    from trl import RewardConfig, RewardTrainer

    from app.training.core.default_models import load_smollm2_tokenizer

    _seed(db)
    result = export_to_folder(db, parse_params({"format": "trl"}), tmp_path)
    dataset = load_dataset("json", data_files=str(tmp_path / result["file"]), split="train")
    assert dataset.column_names == ["prompt", "chosen", "rejected"] and len(dataset) == len(CONVERSATIONS)

    tok = load_smollm2_tokenizer(Path(tempfile.gettempdir()) / "rlhf-smollm2-tokenizer")
    tok.add_special_tokens({"pad_token": "<|pad|>"})
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        num_labels=1,
        pad_token_id=tok.pad_token_id,
    )
    model = LlamaForSequenceClassification(config)
    before = [p.detach().clone() for p in model.parameters()]
    args = RewardConfig(
        output_dir=str(tmp_path / "trl"),
        max_steps=1,
        per_device_train_batch_size=2,
        learning_rate=1e-2,
        report_to="none",
        save_strategy="no",
        logging_steps=1,
        use_cpu=True,
        disable_tqdm=True,
        bf16=False,
    )
    trainer = RewardTrainer(model=model, args=args, train_dataset=dataset, processing_class=tok)
    output = trainer.train()
    assert output.global_step == 1
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True)), (
        "one step changed nothing"
    )
