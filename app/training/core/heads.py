"""A backbone with a small linear head on its pooled output: the reward model (one output) and the
classifier (one output per head) are both this.

Any ``AutoModel`` backbone works. Encoders (all-MiniLM-L6-v2, BERT) are mean-pooled as
sentence-transformers pools them; causal LMs (the policy's own backbone) read the hidden state of the
last non-pad token, the only position that has attended to the whole text. A sequence-classification
checkpoint contributes its base model and, when it has the right number of outputs, its head.

A saved folder is an ordinary ``save_pretrained`` backbone plus tokenizer, with the head beside it in
``head.safetensors`` and what is needed to use it in ``head.json``. Where plain transformers computes the
same function (a bias-free head read at the last token of a decoder, ``app.training.core.seqcls``) the
backbone is saved as an ``AutoModelForSequenceClassification`` checkpoint that carries the head too.

    model, tokenizer = build_model("all-MiniLM-L6-v2", labels=["reward"])
    model(**batch)  # [N, 1]
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from app.kernels.linear import use_fast_linears
from app.training.core.config import DEFAULT_BACKBONE
from app.training.core.last_layer import hidden_at_reads

HEAD_WEIGHTS = "head.safetensors"
HEAD_META = "head.json"


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Average of the unmasked positions. hidden [N, T, H], mask [N, T] -> [N, H]."""
    weights = mask.unsqueeze(-1).to(hidden.dtype)  # [N, T, 1]
    return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0)


def last_token_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Hidden state at the last unmasked position, for left or right padding. [N, T, H] -> [N, H]."""
    positions = torch.arange(mask.shape[1], device=mask.device)  # [T]
    last = (positions * mask.to(positions.dtype)).argmax(dim=1)  # [N]
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]


def cls_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The first token's state ([CLS]). [N, T, H] -> [N, H]."""
    return hidden[:, 0]


POOLERS = {"mean": mean_pool, "last": last_token_pool, "cls": cls_pool}


def is_encoder(config: Any) -> bool:
    """True for bidirectional encoders (the masked-LM family), False for causal decoders."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_MASKED_LM_MAPPING_NAMES

    if getattr(config, "is_encoder_decoder", False):
        raise ValueError(f"encoder-decoder backbones ({config.model_type}) are not supported")
    return config.model_type in MODEL_FOR_MASKED_LM_MAPPING_NAMES and not getattr(config, "is_decoder", False)


class PooledHeadModel(nn.Module):
    """backbone → pool → Linear(hidden, len(labels)). ``forward`` returns float32 scores [N, K]."""

    def __init__(
        self,
        backbone: nn.Module,
        labels: Sequence[str],
        *,
        pooling: str = "auto",
        head: nn.Linear | None = None,
        bias: bool = True,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.labels = list(labels)
        self.encoder = is_encoder(backbone.config)
        self.pooling = ("mean" if self.encoder else "last") if pooling == "auto" else pooling
        if self.pooling not in POOLERS:
            raise ValueError(f"unknown pooling {pooling!r}")
        hidden = backbone.config.hidden_size
        if head is None:
            head = nn.Linear(hidden, len(self.labels), bias=bias)
            # Small init (std 1/sqrt(H+1)): initial scores near 0, so the first steps do not fight a random bias.
            nn.init.normal_(head.weight, std=1.0 / math.sqrt(hidden + 1))
            if head.bias is not None:
                nn.init.zeros_(head.bias)
        if head.out_features != len(self.labels):
            raise ValueError(f"head has {head.out_features} outputs for {len(self.labels)} labels")
        self.head = head.to(next(backbone.parameters()).dtype)
        # Packed rows' last layer only at the reads (``core.last_layer``); set by a run that checked it.
        self.reads_only = False

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
        *,
        position_ids: torch.Tensor | None = None,
        read_rows: torch.Tensor | None = None,
        read_cols: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Scores [N, K] of N padded sequences; or, for packed rows (``data_prefix``: a 4-D mask and
        position ids), the scores read at (``read_rows``, ``read_cols``), one per packed sequence."""
        if self.reads_only and read_rows is not None and read_cols is not None and position_ids is not None:
            pooled = hidden_at_reads(self.backbone, input_ids, attention_mask, position_ids, read_rows, read_cols)
            return self.head(pooled).float()  # [N, K]
        extra: dict[str, Any] = {"use_cache": False} if not self.encoder else {}
        for name, value in (("token_type_ids", token_type_ids), ("position_ids", position_ids)):
            if value is not None:
                extra[name] = value
        out = self.backbone(input_ids=input_ids, attention_mask=attention_mask, return_dict=True, **extra)
        if read_rows is not None and read_cols is not None:
            pooled = out.last_hidden_state[read_rows, read_cols]  # [N, H]
        else:
            pooled = POOLERS[self.pooling](out.last_hidden_state, attention_mask)  # [N, H]
        return self.head(pooled).float()  # [N, K]

    def meta(self) -> dict[str, Any]:
        """What a loader needs besides the weights."""
        return {"labels": self.labels, "pooling": self.pooling, "encoder": self.encoder}


def split_backbone(model: nn.Module, num_outputs: int) -> tuple[nn.Module, nn.Linear | None]:
    """(base model, reusable head or None) of a full HF model; a bare base model comes back as is."""
    base = getattr(model, "base_model", model)
    if base is model:
        return model, None
    for name in ("score", "classifier"):
        head = getattr(model, name, None)
        if isinstance(head, nn.Linear) and head.out_features == num_outputs:
            return base, head
    return base, None


def disable_dropout(module: nn.Module) -> None:
    """Zero every dropout, module or functional, so a model computes one deterministic function.

    Reward and classifier training then optimise the function used at scoring; PPO's policy needs
    it for the same reason, since its ratio π/π_old must compare one function with itself."""
    for sub in module.modules():
        if isinstance(sub, nn.Dropout):
            sub.p = 0.0
        if isinstance(getattr(sub, "attention_dropout", None), float):
            sub.attention_dropout = 0.0


def resolve_backbone(name_or_path: str) -> str:
    """A loadable location: the shipped MiniLM for the default name, otherwise unchanged."""
    if name_or_path == DEFAULT_BACKBONE:
        from app.training.core.default_models import minilm_path

        return str(minilm_path())
    return name_or_path


def ensure_pad_token(tokenizer: Any) -> Any:
    """Causal-LM tokenizers often lack a pad token; pad with EOS (padding is masked out anyway)."""
    if tokenizer.pad_token is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "right"
    return tokenizer


def load_backbone(path: str, num_outputs: int, **kwargs: Any) -> nn.Module:
    """The HF model at ``path``: a sequence-classification checkpoint with ``num_outputs`` outputs (one of
    ours, or a reward model from elsewhere) whole, so :func:`split_backbone` can reuse its head; else the
    bare base model (``AutoModel``)."""
    from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification

    config = AutoConfig.from_pretrained(path)
    seq_cls = any(a.endswith("ForSequenceClassification") for a in (config.architectures or []))
    if seq_cls and getattr(config, "num_labels", None) == num_outputs:
        return AutoModelForSequenceClassification.from_pretrained(path, **kwargs)
    return AutoModel.from_pretrained(path, **kwargs)


def build_model(
    backbone: str | nn.Module,
    labels: Sequence[str],
    *,
    pooling: str = "auto",
    tokenizer: Any = None,
    seed: int = 0,
    bias: bool = True,
) -> tuple[PooledHeadModel, Any]:
    """A fresh head on ``backbone`` (a name/folder, or an already built HF model) and its tokenizer; a
    head the backbone brings (a sequence-classification checkpoint) is kept, whatever ``bias`` says."""
    from transformers import AutoTokenizer

    if isinstance(backbone, str):
        path = resolve_backbone(backbone)
        backbone = load_backbone(path, len(labels))
        tokenizer = tokenizer if tokenizer is not None else AutoTokenizer.from_pretrained(path)
    if tokenizer is None:
        raise ValueError("a tokenizer is required with an in-memory backbone")
    base, head = split_backbone(backbone, len(labels))
    torch.manual_seed(seed)  # the head's init is part of the run's seed
    return PooledHeadModel(base, labels, pooling=pooling, head=head, bias=bias), ensure_pad_token(tokenizer)


def save_model(model: PooledHeadModel, tokenizer: Any, folder: Path, extra_meta: dict[str, Any]) -> None:
    """Backbone, tokenizer and head into ``folder`` (which the caller renames into place); as an
    ``AutoModelForSequenceClassification`` checkpoint where that computes the same scores."""
    from app.training.core.seqcls import save_sequence_classifier

    folder = Path(folder)
    if not save_sequence_classifier(model, tokenizer, folder):
        model.backbone.save_pretrained(str(folder))
        tokenizer.save_pretrained(str(folder))
    head = {k: v.detach().cpu().contiguous() for k, v in model.head.state_dict().items()}
    save_file(head, str(folder / HEAD_WEIGHTS))
    (folder / HEAD_META).write_text(json.dumps({**model.meta(), **extra_meta}, indent=2))


def load_model(
    folder: Path | str, *, device: str | torch.device = "cpu", dtype: torch.dtype | None = None
) -> tuple[PooledHeadModel, Any, dict[str, Any]]:
    """(model in eval mode, tokenizer, head metadata) from a folder written by :func:`save_model`."""
    from transformers import AutoTokenizer

    folder = Path(folder)
    meta = json.loads((folder / HEAD_META).read_text())
    kwargs = {"dtype": dtype} if dtype is not None else {}
    backbone, _ = split_backbone(load_backbone(str(folder), len(meta["labels"]), **kwargs), len(meta["labels"]))
    state = load_file(str(folder / HEAD_WEIGHTS))  # the head, whichever way the backbone was saved
    head = nn.Linear(state["weight"].shape[1], state["weight"].shape[0], bias="bias" in state)
    head.load_state_dict(state)
    model = PooledHeadModel(backbone, meta["labels"], pooling=meta["pooling"], head=head)
    use_fast_linears(model)
    tokenizer = ensure_pad_token(AutoTokenizer.from_pretrained(str(folder)))
    return model.to(device).eval(), tokenizer, meta
