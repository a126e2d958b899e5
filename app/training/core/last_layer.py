"""A decoder reward model's last layer, computed only where the reward is read.

A pooled-at-the-last-token decoder reads one hidden state per sequence, yet a plain forward pass runs
every layer at every position. Below the last layer every position is needed (later tokens attend to
it); in the last layer only the keys and values of every position are, while its query, attention
output, MLP and final norm matter at the read positions alone. On the shared-prefix packed rows
(``core.prefix``) of a small Llama that is ~45 % of the forward (and backward) work saved per step:
the last layer's q/o projections and MLP shrink from every token to two tokens per pair.

It is the same function, computed in another order: :func:`reads_only_exactly` compares it with the
ordinary forward pass on real rows before a run relies on it, and :func:`supports_reads_only` admits
only the Llama-shaped layer it knows (pre-norm attention with q/k/v/o projections and rotary
positions, no query/key norms, then a pre-norm MLP): Llama, SmolLM2, Mistral, Qwen2.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from app.training.core.prefix import MODEL_INPUTS

KNOWN_LAYERS = ("LlamaDecoderLayer", "MistralDecoderLayer", "Qwen2DecoderLayer")


def supports_reads_only(backbone: nn.Module) -> bool:
    """Whether ``backbone`` is a decoder whose last layer this module knows how to compute at reads."""
    layers = getattr(backbone, "layers", None)
    if not layers or not all(hasattr(backbone, name) for name in ("rotary_emb", "norm")):
        return False
    last = layers[-1]
    attn = getattr(last, "self_attn", None)
    return (
        type(last).__name__ in KNOWN_LAYERS
        and attn is not None
        and not hasattr(attn, "q_norm")
        and getattr(attn, "attention_dropout", 0.0) == 0.0
        and not getattr(backbone, "gradient_checkpointing", False)
    )


def hidden_at_reads(
    backbone: nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    position_ids: torch.Tensor,
    read_rows: torch.Tensor,
    read_cols: torch.Tensor,
) -> torch.Tensor:
    """The final (normed) hidden state at each (row, col) read, [N, H], from packed rows with a 4-D mask
    [B, 1, W, W] (boolean, or additive for eager attention) and their position ids [B, W]."""
    hidden = backbone.get_input_embeddings()(input_ids)  # [B, W, H]
    cos, sin = backbone.rotary_emb(hidden, position_ids=position_ids)  # [B, W, D] each
    for layer in backbone.layers[:-1]:
        hidden = layer(hidden, attention_mask=attention_mask, position_embeddings=(cos, sin), position_ids=position_ids)
    last = backbone.layers[-1]
    attended = _attention_at_reads(
        last.self_attn, last.input_layernorm(hidden), attention_mask, (cos, sin), read_rows, read_cols
    )
    state = hidden[read_rows, read_cols] + attended  # [N, H]
    state = state + last.mlp(last.post_attention_layernorm(state))
    return backbone.norm(state)


def _attention_at_reads(
    attn: nn.Module,
    normed: torch.Tensor,
    mask: torch.Tensor,
    rotary: tuple[torch.Tensor, torch.Tensor],
    read_rows: torch.Tensor,
    read_cols: torch.Tensor,
) -> torch.Tensor:
    """The attention block's output [N, H] at the reads: keys and values from every position of the
    read's row, one query at the read, the read's row of the mask."""
    rotate_half = sys.modules[type(attn).__module__].rotate_half  # the model's own rotary layout
    batch, width, _ = normed.shape
    d = attn.head_dim
    keys = attn.k_proj(normed).view(batch, width, -1, d).transpose(1, 2)  # [B, Hkv, W, D]
    values = attn.v_proj(normed).view(batch, width, -1, d).transpose(1, 2)  # [B, Hkv, W, D]
    cos, sin = (t.unsqueeze(1) for t in rotary)  # [B, 1, W, D]
    keys = keys * cos + rotate_half(keys) * sin
    query = attn.q_proj(normed[read_rows, read_cols]).view(len(read_rows), -1, 1, d)  # [N, Hq, 1, D]
    cos, sin = (t[read_rows, :, read_cols].unsqueeze(2) for t in (cos, sin))  # [N, 1, 1, D]
    query = query * cos + rotate_half(query) * sin
    row_mask = mask[read_rows, :, read_cols].unsqueeze(2)  # [N, 1, 1, W]
    out = F.scaled_dot_product_attention(
        query,
        keys[read_rows],
        values[read_rows],
        attn_mask=row_mask,
        scale=attn.scaling,
        enable_gqa=query.shape[1] != keys.shape[1],
    )  # [N, Hq, 1, D]
    return attn.o_proj(out.reshape(len(read_rows), -1))


@torch.no_grad()
def reads_only_exactly(model: Any, sample: Sequence[dict], collate: Any, *, atol: float = 1e-4) -> bool:
    """Score a few packed rows both ways; True when the reads-only last layer gives the same rewards.

    ``model`` is a PooledHeadModel, ``collate`` the packed collator the run will use."""
    if not sample or not supports_reads_only(model.backbone):
        return False
    device = next(model.parameters()).device
    batch = {k: v.to(device) for k, v in collate(list(sample)).items() if k in MODEL_INPUTS}
    was_training = model.training
    model.eval()
    try:
        full = model(**batch)
        model.reads_only = True
        fast = model(**batch)
        return torch.allclose(fast, full, atol=atol, rtol=1e-3)
    except (TypeError, ValueError, RuntimeError, IndexError, AttributeError):
        return False
    finally:
        model.reads_only = False
        model.train(was_training)
