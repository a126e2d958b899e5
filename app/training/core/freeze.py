"""Training only the top layers of a backbone: the embeddings and the lower blocks stay as pretrained.

Why: most of a backbone-plus-head run's time is the backward pass, and it stops at the lowest weight
that needs a gradient. With the lower half of the blocks frozen, the backward pass runs through half the
network, and AdamW steps half the weights (MiniLM: the embeddings are over half its parameters). It is
also the usual guard against overfitting a few hundred judgements: the lower layers hold general
language features the preference data is too small to improve. The blocks are found by structure (the
backbone's largest ``nn.ModuleList``), so it works for encoders and decoders alike; what comes before
the stack in the module order (embeddings) is frozen with the lower blocks, what comes after it (a final
norm, a pooler) trains with the top ones.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn


@dataclass(frozen=True)
class Frozen:
    """What ``freeze_lower_layers`` did, for the run's log."""

    blocks: int  # transformer blocks in the backbone
    trained_blocks: int
    frozen_parameters: int
    trained_parameters: int


def block_stack(backbone: nn.Module) -> tuple[str, nn.ModuleList]:
    """The backbone's stack of transformer blocks, by name: its ``nn.ModuleList`` holding the most parameters
    (BERT's ``encoder.layer``, Llama's ``layers``). Raises ValueError when it has none."""
    stacks = [(name, module) for name, module in backbone.named_modules() if isinstance(module, nn.ModuleList)]
    if not stacks:
        raise ValueError(f"{type(backbone).__name__} has no stack of layers to freeze the lower ones of")
    return max(stacks, key=lambda item: sum(p.numel() for p in item[1].parameters()))


def freeze_lower_layers(backbone: nn.Module, trainable_layers: int) -> Frozen | None:
    """Freeze every backbone weight below its top ``trainable_layers`` blocks; None when that is all of them
    (``trainable_layers`` 0 or at least the depth: every weight trains, nothing is changed)."""
    if trainable_layers <= 0:
        return None  # the default: not even the stack is looked for, so any backbone trains as before
    name, stack = block_stack(backbone)
    depth = len(stack)
    if trainable_layers >= depth:
        return None
    prefix = f"{name}." if name else ""
    lowest_trained = depth - trainable_layers
    below_stack = True  # module order is forward order: embeddings, then the blocks, then norms and poolers
    frozen = trained = 0
    for param_name, param in backbone.named_parameters():
        if param_name.startswith(prefix):
            below_stack = False
            block = int(param_name[len(prefix) :].split(".", 1)[0])
            keep = block >= lowest_trained
        else:
            keep = not below_stack
        param.requires_grad_(keep and param.requires_grad)
        if param.requires_grad:
            trained += param.numel()
        else:
            frozen += param.numel()
    return Frozen(depth, trainable_layers, frozen, trained)


__all__ = ["Frozen", "block_stack", "freeze_lower_layers"]
