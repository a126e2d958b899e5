"""The models PPO trains and compares against: π_θ with its value function, and π_ref.

:class:`ActorCritic` runs the policy's transformer trunk ONCE per sequence and reads both log π of the
response tokens (through the LM head, a vocabulary block at a time: ``ppo_logprobs``) and the value V(s_t)
(through a linear value head) off the same hidden states, only at the positions that predict response
tokens. With LoRA (the default) the reference
policy is the very same module with its adapters disabled, so no second copy of the weights exists;
with full fine-tuning it is a frozen copy. A separate value model (a reward model's backbone and head,
read at every position) is the alternative to the value head.

Sequences are laid out ``[left-padded prompt (P) | right-padded response (T)]``, so the states that
predict the response tokens are always the slice ``[P − 1, P + T − 1)`` = ``[-T - 1 : -1]``.
"""

from __future__ import annotations

import contextlib
import copy
import inspect
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from app.kernels.linear import use_fast_linears
from app.training.core.config import PolicySettings
from app.training.core.heads import disable_dropout
from app.training.core.logprobs import sampled_token_logprobs, token_logprobs
from app.training.core.lora import add_lora
from app.training.ppo.config import PPOConfig


def position_ids(attention_mask: torch.Tensor) -> torch.Tensor:
    """Positions that count only real tokens, so left padding does not shift a prompt. [B, L] → [B, L]."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def unwrap_lm(lm: nn.Module) -> nn.Module:
    """The Hugging Face causal LM inside a peft model (LoRA layers are injected into it in place)."""
    return lm.get_base_model() if hasattr(lm, "get_base_model") else lm


def cache_kwarg(trunk: nn.Module) -> str:
    """The name this transformers version gives the KV-cache argument (``cache`` from 5.x on)."""
    params = inspect.signature(trunk.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


class ValueModel(nn.Module):
    """A causal backbone and a scalar head read at every position: V(s_t) for every prefix."""

    def __init__(self, backbone: nn.Module, head: nn.Linear) -> None:
        super().__init__()
        self.backbone, self.head = backbone, head

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.backbone(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids(attention_mask),
            use_cache=False,
        ).last_hidden_state
        return self.head(hidden).squeeze(-1).float()  # [B, L]


class ActorCritic(nn.Module):
    """log π_θ (at temperature τ) and V on response positions, from one pass through the trunk."""

    def __init__(self, lm: nn.Module, *, temperature: float, value_model: ValueModel | None = None) -> None:
        super().__init__()
        self.lm = lm  # a peft model (LoRA) or the plain causal LM (full fine-tuning)
        self.temperature = temperature
        self.value_model = value_model
        hidden = unwrap_lm(lm).config.hidden_size
        self.value_head = None if value_model is not None else nn.Linear(hidden, 1)
        if self.value_head is not None:  # V starts at 0: the first advantages are the returns themselves
            nn.init.zeros_(self.value_head.weight)
            nn.init.zeros_(self.value_head.bias)

    @property
    def causal_lm(self) -> nn.Module:
        return unwrap_lm(self.lm)

    @property
    def trunk(self) -> nn.Module:
        lm = self.causal_lm
        return getattr(lm, lm.base_model_prefix)

    def hidden(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        """Last hidden states [B, L, H] of the policy trunk (kwargs: a KV cache, explicit positions)."""
        positions = kwargs.pop("position_ids", None)
        positions = position_ids(attention_mask) if positions is None else positions
        return self.trunk(
            input_ids=input_ids, attention_mask=attention_mask, position_ids=positions, **kwargs
        ).last_hidden_state

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Tempered logits, float32: the distribution responses are sampled from. [..., H] → [..., V].

        W·h / τ = W·(h / τ): dividing the hidden state instead of the logits saves a pass over the
        vocabulary-sized tensor (exact when the LM head has no bias)."""
        head = self.causal_lm.get_output_embeddings()
        if getattr(head, "bias", None) is not None:
            return head(hidden).float() / self.temperature
        return head(hidden / self.temperature).float()

    def token_logprobs(self, hidden: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """log π(token) under the tempered distribution, without the full logits. [B, T, H] → [B, T]."""
        head = self.causal_lm.get_output_embeddings()
        if getattr(head, "bias", None) is not None:
            return token_logprobs(self.logits(hidden), tokens)
        return sampled_token_logprobs(hidden / self.temperature, head, tokens)

    def values(self, hidden: torch.Tensor) -> torch.Tensor:
        """V from the value head. [..., H] → [...]."""
        return self.value_head(hidden).squeeze(-1).float()

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, tokens: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(log π(token) [B, T], V [B, T]) for the T response ``tokens`` at the end of ``input_ids``."""
        length = tokens.shape[1]
        hidden = self.hidden(input_ids, attention_mask)[:, -length - 1 : -1]  # [B, T, H]: states before each token
        if self.value_model is None:
            values = self.values(hidden)
        else:
            values = self.value_model(input_ids, attention_mask)[:, -length - 1 : -1]
        return self.token_logprobs(hidden, tokens), values

    @contextlib.contextmanager
    def reference(self, frozen: nn.Module | None) -> Iterator[ActorCritic]:
        """π_ref: this module with LoRA disabled, or ``frozen`` (a full copy) swapped in for the LM."""
        if frozen is None:
            with self.lm.disable_adapter():
                yield self
            return
        lm, self.lm = self.lm, frozen
        try:
            yield self
        finally:
            self.lm = lm

    def trainable_state(self) -> dict[str, torch.Tensor]:
        """What training changes (adapters + value head, or every weight): the resumable part."""
        return {name: p.detach().cpu().clone() for name, p in self.named_parameters() if p.requires_grad}

    def load_trainable_state(self, state: dict[str, torch.Tensor]) -> None:
        params = dict(self.named_parameters())
        missing = {name for name, p in params.items() if p.requires_grad} - set(state)
        if missing:
            raise ValueError(f"checkpoint lacks {len(missing)} trainable tensors, e.g. {sorted(missing)[0]}")
        with torch.no_grad():
            for name, value in state.items():
                params[name].copy_(value)


class PolicyModel(ActorCritic):
    """ActorCritic without its critic, for trainers that learn no value function (RLOO, DPO): ``forward``
    gives log π_θ of response tokens only, so nothing trains, saves or resumes but the policy itself."""

    def __init__(self, lm: nn.Module, *, temperature: float) -> None:
        super().__init__(lm, temperature=temperature)
        self.value_head = None  # dropped before any optimizer or checkpoint sees it

    def values(self, hidden: torch.Tensor) -> torch.Tensor:
        """Zeros: what the shared sampler records as V, which these trainers never read. [..., H] → [...]."""
        return hidden.new_zeros(hidden.shape[:-1], dtype=torch.float32)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,  # type: ignore[override]
        tokens: torch.Tensor,
        position_ids: torch.Tensor | None = None,
        read_rows: torch.Tensor | None = None,
        read_cols: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """log π(token) [N, T] for the T response ``tokens`` at the end of ``input_ids`` (``loss_logprobs``); or,
        with ``read_rows`` [N] and ``read_cols`` [N, T], of tokens predicted at those places of packed rows
        (several answers to one prompt in one row, ``attention_mask`` 4-D: ``dpo.data.PackedDPOCollator``)."""
        if read_rows is None or read_cols is None:
            hidden = self.hidden(input_ids, attention_mask)[:, -tokens.shape[1] - 1 : -1]  # states before each token
        else:
            hidden = self.hidden(input_ids, attention_mask, position_ids=position_ids)[read_rows[:, None], read_cols]
        return self.loss_logprobs(hidden, tokens)

    def loss_logprobs(self, hidden: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """The log-probs the loss reads: the tempered policy's, the one the responses were sampled from."""
        return self.token_logprobs(hidden, tokens)


def ensure_distinct_pad(tokenizer: Any, lm: nn.Module, pad_token: str) -> Any:
    """A copy of ``tokenizer`` whose pad token differs from EOS (added, embeddings resized, if needed).

    Padding and the end of a response must not be the same token, or a padded position is
    indistinguishable from a real EOS."""
    tokenizer = copy.deepcopy(tokenizer)
    if tokenizer.eos_token_id is None:
        raise ValueError("policy: the tokenizer has no EOS token, so responses could never end")
    if tokenizer.pad_token_id is None or tokenizer.pad_token_id == tokenizer.eos_token_id:
        tokenizer.add_special_tokens({"pad_token": pad_token})
    if len(tokenizer) > lm.get_input_embeddings().num_embeddings:
        lm.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    for config in (lm.config, getattr(lm, "generation_config", None)):
        if config is not None:
            config.pad_token_id = tokenizer.pad_token_id
    return tokenizer


def load_policy(config: PolicySettings, lm: nn.Module | None, tokenizer: Any) -> tuple[nn.Module, Any]:
    """(causal LM, tokenizer) from ``config.policy`` unless already built ones are given (PPO, RLOO, DPO)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if lm is None:
        if not config.policy:
            raise ValueError("policy: a policy folder (or an in-memory model) is required")
        lm = AutoModelForCausalLM.from_pretrained(config.policy, dtype=torch.float32)
    if tokenizer is None:
        if not config.policy:
            raise ValueError("policy: a tokenizer is required with an in-memory policy")
        tokenizer = AutoTokenizer.from_pretrained(config.policy)
    tokenizer = ensure_distinct_pad(tokenizer, lm, config.pad_token)
    disable_dropout(lm)
    use_fast_linears(lm)
    return lm, tokenizer


def value_model_from(reward_model: nn.Module | str, vocab_size: int) -> ValueModel:
    """A trainable copy of a reward model as a per-token value model.

    Accepts a reward-model folder (saved by the reward trainer), a :class:`PooledHeadModel` or a Hugging
    Face ``*ForSequenceClassification`` model. It must be causal (values are read at every prefix); its
    vocabulary is extended when the policy's tokenizer gained a pad token (padded positions are masked)."""
    from app.training.core.heads import PooledHeadModel, is_encoder, load_model, split_backbone

    if isinstance(reward_model, str):
        reward_model = load_model(reward_model)[0]
    reward_model = copy.deepcopy(reward_model)
    if isinstance(reward_model, PooledHeadModel):
        backbone, head = reward_model.backbone, reward_model.head
    else:
        backbone, head = split_backbone(reward_model, 1)
    if head is None or head.out_features != 1:
        raise ValueError("value_model: the reward model needs a single-output head")
    if is_encoder(backbone.config):
        raise ValueError("value_model: a separate value model must be a causal LM, not an encoder")
    if backbone.get_input_embeddings().num_embeddings < vocab_size:
        backbone.resize_token_embeddings(vocab_size, mean_resizing=False)
    disable_dropout(backbone)
    backbone.train()
    for p in [*backbone.parameters(), *head.parameters()]:
        p.requires_grad_(True)
    return ValueModel(backbone, head)


def trainable_policy(config: PolicySettings, lm: nn.Module, *, seed: int) -> tuple[nn.Module, nn.Module | None]:
    """(the LM to train, frozen reference or None): LoRA-wrapped, so that π_ref is the same weights with
    the adapters disabled, or a frozen full copy beside it. Seeds the adapters' init with ``seed`` (each
    trainer's config has its own, seeding more than the adapters)."""
    torch.manual_seed(seed)
    if config.use_lora:
        return add_lora(lm, config), None
    return lm, copy.deepcopy(lm).eval().requires_grad_(False)


def build_actor_critic(
    config: PPOConfig, lm: nn.Module, value_model: nn.Module | str | None, vocab_size: int
) -> tuple[ActorCritic, nn.Module | None]:
    """(ActorCritic, frozen reference or None). Seeds the adapters' init with ``config.seed``."""
    lm, frozen = trainable_policy(config, lm, seed=config.seed)
    source = value_model if value_model is not None else (config.value_model or None)
    critic = value_model_from(source, vocab_size) if source is not None else None
    actor = ActorCritic(lm, temperature=config.temperature, value_model=critic)
    actor.train()
    return actor, frozen
