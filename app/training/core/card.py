"""The card saved with every trained reward model or classifier, and the run fingerprint.

The card says what the model was trained on (a hash of the example ids and the counts per split),
with which settings, and how well it did on held-out prompts. Its fingerprint also lets a re-run that
finds its own finished folder (a crash after the rename, before the job was marked done) return the
stored result instead of training again.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from app.training.core.config import StoredConfig
from app.training.core.data import ids_fingerprint, prompt_key_of

CARD_NAME = "card.json"


def run_fingerprint(examples: Sequence[Any], config: StoredConfig, backbone_label: str) -> str:
    """sha256 of (data snapshot, settings, backbone): equal exactly when a run would train the same model."""
    payload = json.dumps(
        {"data": ids_fingerprint(examples), "config": config.to_dict(), "backbone": backbone_label},
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def data_snapshot(examples: Sequence[Any], train: Sequence[Any], validation: Sequence[Any]) -> dict[str, Any]:
    """Hash of the ids and the counts, per split, of examples and prompts."""
    return {
        "ids_sha256": ids_fingerprint(examples),
        "examples": len(examples),
        "train_examples": len(train),
        "validation_examples": len(validation),
        "train_prompts": len({prompt_key_of(ex) for ex in train}),
        "validation_prompts": len({prompt_key_of(ex) for ex in validation}),
    }


def build_card(
    *,
    kind: str,
    backbone: str,
    labels: Sequence[str],
    config: StoredConfig,
    data: dict[str, Any],
    fingerprint: str,
    metrics: dict[str, float],
    steps: int,
    resumed_from: int,
) -> dict[str, Any]:
    """The card's content; plain JSON values only."""
    import accelerate
    import torch
    import transformers

    return {
        "kind": kind,
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "backbone": backbone,
        "labels": list(labels),
        "config": config.to_dict(),
        "data": data,
        "fingerprint": fingerprint,
        "metrics": metrics,
        "steps": steps,
        "resumed_from_step": resumed_from,
        "versions": {
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "accelerate": accelerate.__version__,
        },
    }


def write_card(folder: Path, card: dict[str, Any]) -> None:
    (Path(folder) / CARD_NAME).write_text(json.dumps(card, indent=2, sort_keys=True))


def read_card(folder: Path | str) -> dict[str, Any]:
    """The card of a saved model folder."""
    return json.loads((Path(folder) / CARD_NAME).read_text())


def finished_card(output_dir: Path, fingerprint: str) -> dict[str, Any] | None:
    """The card of an already finished identical run at ``output_dir``, None when there is no folder.

    A folder from a different run is an error: finished model folders are never overwritten."""
    if not output_dir.exists():
        return None
    try:
        card = read_card(output_dir)
    except (OSError, ValueError) as exc:
        raise FileExistsError(f"{output_dir} exists and holds no readable card") from exc
    if card.get("fingerprint") != fingerprint:
        raise FileExistsError(f"{output_dir} holds a model from a different run")
    return card


def default_checkpoint_path(output_dir: Path) -> Path:
    """The resumable checkpoint beside the output folder (hidden, removed once the model is saved)."""
    return output_dir.with_name(f".{output_dir.name}.resume.pt")
