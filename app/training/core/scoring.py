"""Scoring (prompt, response) pairs with a saved backbone-plus-head model: load once, score in batches.

Texts are encoded exactly as in training (``data_encode``), sorted by length so each padded batch
wastes little, scored without autograd and returned in the caller's order.

    scorer = RewardScorer("/models/reward-3")  # app.training.reward.scoring
    scorer.score([("How do I fix a bike?", "Sure! First …"), …])  # -> [1.73, …]
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from app.training.core.batches import pad_sequences
from app.training.core.data import Prompt
from app.training.core.encode import Encoded, encode_responses, pad_token_id
from app.training.core.heads import PooledHeadModel, load_model


@torch.inference_mode()
def predict_encoded(
    model: PooledHeadModel, rows: Sequence[Encoded], *, pad_id: int, batch_size: int, device: torch.device | str
) -> torch.Tensor:
    """Scores [N, K] on the CPU for encoded rows, batched longest-first, in the rows' order."""
    was_training = model.training
    model.eval()
    order = sorted(range(len(rows)), key=lambda i: -len(rows[i]["input_ids"]))
    out = torch.empty((len(rows), len(model.labels)), dtype=torch.float32)
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        batch = {k: v.to(device) for k, v in pad_sequences([rows[i] for i in idx], pad_id).items()}
        out[idx] = model(**batch).cpu()
    model.train(was_training)
    return out


def default_device() -> torch.device:
    """The first GPU when there is one, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


class HeadScorer:
    """A saved backbone-plus-head model, loaded once, scoring batches of (prompt, response)."""

    def __init__(
        self,
        folder: Path | str,
        *,
        device: str | torch.device | None = None,
        batch_size: int = 32,
        max_length: int | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        self.folder = Path(folder)
        self.device = torch.device(device) if device is not None else default_device()
        self.model, self.tokenizer, self.meta = load_model(folder, device=self.device, dtype=dtype)
        self.batch_size = batch_size
        self.max_length = max_length or int(self.meta.get("max_length", 512))
        self.pad_id = pad_token_id(self.tokenizer)

    @property
    def labels(self) -> list[str]:
        return self.model.labels

    def raw_scores(self, pairs: Sequence[tuple[Prompt, str]]) -> torch.Tensor:
        """Head outputs [N, K] for (prompt, response) pairs."""
        if not pairs:
            return torch.empty((0, len(self.labels)))
        rows = encode_responses(
            self.tokenizer,
            [p for p, _ in pairs],
            [r for _, r in pairs],
            encoder=self.model.encoder,
            max_length=self.max_length,
        )
        return predict_encoded(self.model, rows, pad_id=self.pad_id, batch_size=self.batch_size, device=self.device)
