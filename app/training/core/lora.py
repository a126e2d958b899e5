"""LoRA adapters on a causal LM: wrapped for training, merged back for saving (peft).

Every policy trainer (SFT, PPO, RLOO, DPO) trains adapters by default and saves a plain checkpoint with
them folded into the weights, so any backend loads the result. Kept apart from the configs so that code
that only reads settings need not import peft or torch.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
from torch import nn

from app.kernels.linear import use_fast_linears
from app.training.core.config import LoRASettings, lora_targets

ADAPTER_DIR = "adapter"  # in a policy's folder: its LoRA adapters alone, beside the merged weights


def add_lora(lm: nn.Module, settings: LoRASettings) -> nn.Module:
    """Wrap ``lm`` in LoRA adapters (only they train; the base weights are frozen); returns the peft model.

    The adapters' init draws from torch's global generator: seed it first for a run that repeats."""
    from peft import LoraConfig, get_peft_model

    lora = LoraConfig(
        r=settings.lora_r,
        lora_alpha=settings.lora_alpha,
        lora_dropout=settings.lora_dropout,
        target_modules=lora_targets(settings.lora_target_modules),
        task_type="CAUSAL_LM",
        bias="none",
    )
    with warnings.catch_warnings():  # peft asks transformers a question transformers 5 calls deprecated
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        wrapped = get_peft_model(lm, lora)
    use_fast_linears(wrapped)  # the adapters' own layers are new plain ones
    return wrapped


def merge_adapters(lm: nn.Module) -> nn.Module:
    """The plain model with the adapters folded into its weights (W + (α/r)·B·A); ``lm`` itself without any."""
    return lm.merge_and_unload() if hasattr(lm, "merge_and_unload") else lm


@contextlib.contextmanager
def adapters_merged(lm: nn.Module) -> Iterator[None]:
    """Inside: the adapters folded into the base weights, so each adapted layer is one matrix product (online
    DPO's sampling of SmolLM2, adapters on every linear layer, ran at 158 tokens/s unmerged against 179 merged:
    two small products and a sum more per layer and step); after: the adapters apart again and the base
    weights restored bit for bit from a copy kept meanwhile (peft's unmerge subtracts what it added, which
    leaves rounding in frozen weights that the reference policy reads). Costs a copy of the adapted layers'
    weights while inside; no-op without adapters. For inference only: the merged layers compute no adapter
    gradients."""
    if not getattr(lm, "peft_config", None) or not hasattr(lm, "merge_adapter"):
        yield
        return
    from peft.tuners.lora import LoraLayer

    weights = [layer.get_base_layer().weight for layer in lm.modules() if isinstance(layer, LoraLayer)]
    saved = [weight.detach().clone() for weight in weights]
    lm.merge_adapter()
    try:
        yield
    finally:
        lm.unmerge_adapter()
        with torch.no_grad():
            for weight, original in zip(weights, saved, strict=True):
                weight.copy_(original)


def adapter_writer(lm: nn.Module) -> Callable[[Path], None] | None:
    """A writer of ``lm``'s LoRA adapters alone as a peft adapter folder, captured before they are merged
    (None for a model without adapters). A server that holds the parent (vLLM with runtime LoRA loading)
    serves the child from this folder without loading a second copy of the weights."""
    if not hasattr(lm, "peft_config"):
        return None
    from peft import get_peft_model_state_dict
    from safetensors.torch import save_file

    config = lm.peft_config["default"]
    state = {key: value.detach().clone().contiguous() for key, value in get_peft_model_state_dict(lm).items()}

    def write(folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        config.save_pretrained(str(folder))
        save_file(state, str(folder / "adapter_model.safetensors"))

    return write
