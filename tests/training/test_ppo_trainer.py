"""The PPO trainer learns an easy reward with bounded KL, resumes exactly, and saves a loadable merged policy.

The learning and resume tests use a word-level tokenizer (35 tokens) and a tiny Llama whose random
initial distributions are not flat (init std 0.1), as a pretrained model's are not, so that 20 updates
on two CPU cores are enough to see the policy move. The merge test uses the real SmolLM2 tokenizer and
chat-message prompts. The helpers here are shared with ``test_ppo_distributed.py``.
"""

from __future__ import annotations

import json

import pytest
import torch

from app.training.core.card import default_checkpoint_path
from app.training.ppo.config import PPOConfig
from app.training.ppo.trainer import TrainingStopped, train_ppo

VERBS = ["clean", "fix", "paint", "store", "wash", "repair", "move", "sort"]
OBJECTS = ["a bike", "the kitchen", "a shelf", "my shoes", "the garden", "a window"]
ANSWER_WORDS = ["sure", "yes", "no", "maybe", "first", "then", "done", "ok"]
PROMPTS = [f"User: How do I {v} {o}?\nAssistant:" for v in VERBS for o in OBJECTS]


def wordlevel_tokenizer():
    """A 35-token word-level tokenizer over the prompts and answer words; pad, unk and EOS distinct."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()])
    tok.train_from_iterator(
        [*PROMPTS, " ".join(ANSWER_WORDS)], trainers.WordLevelTrainer(special_tokens=["<pad>", "<unk>", "<eos>"])
    )
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", unk_token="<unk>", eos_token="<eos>")


def tiny_policy(tokenizer, seed: int = 0, init: float = 0.1):
    """A 2-layer, hidden-32 Llama over ``tokenizer``'s vocabulary."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    return LlamaForCausalLM(
        LlamaConfig(
            vocab_size=len(tokenizer),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
            tie_word_embeddings=True,
            initializer_range=init,
        )
    )


class AnswerWordBonus:
    """Reward = the share of response tokens that are answer words; records what it scored."""

    def __init__(self, tokenizer) -> None:
        self.ids = set(tokenizer.convert_tokens_to_ids(ANSWER_WORDS))
        self.prompts_seen: list[str] = []

    def __call__(self, completions) -> list[float]:
        self.prompts_seen.extend(c.prompt for c in completions)
        return [sum(t in self.ids for t in c.response_ids) / len(c.response_ids) for c in completions]


def small_config(**overrides: object) -> PPOConfig:
    values = {
        "batch_size": 8,
        "response_length": 8,
        "updates": 4,
        "learning_rate": 1e-2,
        "missing_eos_penalty": 0.0,
        "checkpoint_every": 0,
        "num_threads": 1,
        "use_cpu": True,
    }
    return PPOConfig(**{**values, **overrides})


def test_ppo_raises_an_easily_learnt_reward_while_the_kl_stays_bounded(tmp_path, reporter_cls) -> None:
    tok = wordlevel_tokenizer()
    reporter = reporter_cls()
    config = small_config(batch_size=16, num_minibatches=2, updates=20)
    result = train_ppo(
        PROMPTS,
        config,
        tmp_path / "policy",
        reward=AnswerWordBonus(tok),
        policy=tiny_policy(tok),
        tokenizer=tok,
        reporter=reporter,
    )

    scores = [h["score"] for h in result.history]
    kls = [h["kl"] for h in result.history]
    assert len(scores) == result.steps == 20
    assert sum(scores[-5:]) / 5 >= sum(scores[:5]) / 5 + 0.1, scores  # the policy learnt the bonus
    assert abs(kls[0]) < 1e-4  # the first batch is sampled by the reference itself
    assert all(0.0 <= kl < 8.0 for kl in kls[1:]), kls  # held near π_ref: ≪ 8 tokens × log 35 ≈ 28 nats
    assert all(h["beta"] == config.kl_coef for h in result.history)
    assert all(h["entropy"] > 0.5 for h in result.history)
    reported = {name for _, name, _ in reporter.metrics}
    assert {
        "score",
        "kl",
        "entropy",
        "policy_loss",
        "value_loss",
        "clip_fraction",
        "approx_kl",
        "response_length",
        "beta",
        "learning_rate",
    } <= reported
    assert reporter.progress_calls[-1] == 1.0
    assert result.history[-1]["learning_rate"] < result.history[0]["learning_rate"]  # linear decay


def test_a_stopped_run_resumes_and_finishes_like_an_uninterrupted_one(tmp_path, reporter_cls) -> None:
    tok = wordlevel_tokenizer()
    config = small_config(updates=6, target_kl=1.0, kl_horizon=16)  # adaptive β: its state must survive too
    straight = train_ppo(
        PROMPTS, config, tmp_path / "straight", reward=AnswerWordBonus(tok), policy=tiny_policy(tok), tokenizer=tok
    )

    with pytest.raises(TrainingStopped) as stopped:
        train_ppo(
            PROMPTS,
            config,
            tmp_path / "resumed",
            reward=AnswerWordBonus(tok),
            policy=tiny_policy(tok),
            tokenizer=tok,
            reporter=reporter_cls(stop_at=3),
        )
    assert stopped.value.step == 3
    checkpoint = default_checkpoint_path(tmp_path / "resumed")
    assert checkpoint.is_file() and not (tmp_path / "resumed").exists()

    reporter = reporter_cls()
    resumed = train_ppo(
        PROMPTS,
        config,
        tmp_path / "resumed",
        reward=AnswerWordBonus(tok),
        policy=tiny_policy(tok),
        tokenizer=tok,
        reporter=reporter,
    )
    assert resumed.resumed_from == 3 and resumed.steps == straight.steps == 6
    assert any("resumed from the checkpoint at update 3" in line for line in reporter.logs)
    assert sorted({step for step, _, _ in reporter.metrics}) == [4, 5, 6]
    for before, after in zip(straight.history, resumed.history, strict=True):
        assert after == pytest.approx(before, rel=1e-4, abs=1e-5)
    assert straight.history[-1]["beta"] != config.kl_coef  # β did adapt
    for (name, a), (_, b) in zip(straight.model.state_dict().items(), resumed.model.state_dict().items(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5, msg=name)
    assert not checkpoint.exists()
    again = train_ppo(
        PROMPTS, config, tmp_path / "resumed", reward=AnswerWordBonus(tok), policy=tiny_policy(tok), tokenizer=tok
    )
    assert again.model is None and again.steps == 6  # finished run: its card is returned, nothing retrained


def test_micro_batches_accumulate_into_the_same_update(tmp_path) -> None:
    tok = wordlevel_tokenizer()
    runs = [
        train_ppo(
            PROMPTS,
            small_config(updates=2, micro_batch_size=size),
            tmp_path / f"mb{size}",
            reward=AnswerWordBonus(tok),
            policy=tiny_policy(tok),
            tokenizer=tok,
        )
        for size in (0, 3)
    ]
    for whole, micro in zip(runs[0].history, runs[1].history, strict=True):
        assert micro == pytest.approx(whole, rel=1e-4, abs=1e-5)
    for (name, a), (_, b) in zip(runs[0].model.state_dict().items(), runs[1].model.state_dict().items(), strict=True):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5, msg=name)


def test_the_merged_policy_loads_with_auto_model_and_generates(tmp_path, smollm2_tokenizer) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from app.training.core.tiny import tiny_llama

    assert smollm2_tokenizer.pad_token_id == smollm2_tokenizer.eos_token_id  # the trainer must add its own pad
    policy = tiny_llama(smollm2_tokenizer)
    initial = {k: v.clone() for k, v in policy.state_dict().items()}
    prompts = [[{"role": "user", "content": f"How do I {v} {o}?"}] for v in VERBS[:4] for o in OBJECTS[:2]]
    config = small_config(updates=2, response_length=6, learning_rate=1e-2)
    result = train_ppo(
        prompts,
        config,
        tmp_path / "policy",
        reward=lambda cs: [float(len(c.response)) for c in cs],
        policy=policy,
        tokenizer=smollm2_tokenizer,
    )

    folder = tmp_path / "policy"
    assert {"config.json", "model.safetensors", "tokenizer.json", "generation_config.json", "card.json"} <= {
        p.name for p in folder.iterdir()
    }
    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    tok = AutoTokenizer.from_pretrained(folder)
    assert tok.pad_token_id != tok.eos_token_id and tok.pad_token == config.pad_token
    assert model.generation_config.pad_token_id == tok.pad_token_id
    assert model.get_input_embeddings().num_embeddings == len(tok) == len(smollm2_tokenizer) + 1
    assert not any(".lora_" in name for name in model.state_dict())  # adapters merged away
    q = "model.layers.0.self_attn.q_proj.weight"
    assert not torch.equal(model.state_dict()[q], initial[q])  # LoRA training changed the merged weights
    inputs = tok.apply_chat_template(prompts[0], add_generation_prompt=True, return_tensors="pt", return_dict=True)
    out = model.generate(**inputs, max_new_tokens=5, do_sample=False, pad_token_id=tok.pad_token_id)
    assert out.shape[1] > inputs["input_ids"].shape[1]
    with torch.no_grad():
        torch.testing.assert_close(model(**inputs).logits, result.model(**inputs).logits)
    card = json.loads((folder / "card.json").read_text())
    assert card["kind"] == "policy" and card["updates"] == 2 and card["metrics"] == result.metrics
    # The adapters alone, for a server that holds the parent (vLLM runtime LoRA loading): the merged weight is
    # the parent's plus (alpha / r) · B · A of the saved adapter.
    from safetensors.torch import load_file

    adapter_config = json.loads((folder / "adapter" / "adapter_config.json").read_text())
    adapter = load_file(folder / "adapter" / "adapter_model.safetensors")
    a, b = (adapter[f"base_model.model.model.layers.0.self_attn.q_proj.lora_{ab}.weight"] for ab in "AB")
    scale = adapter_config["lora_alpha"] / adapter_config["r"]
    torch.testing.assert_close(model.state_dict()[q], initial[q] + scale * b @ a)


def test_full_fine_tuning_against_a_frozen_copy_with_a_separate_value_model(tmp_path) -> None:
    from transformers import LlamaConfig, LlamaForSequenceClassification

    tok = wordlevel_tokenizer()
    torch.manual_seed(1)
    reward_model = LlamaForSequenceClassification(
        LlamaConfig(
            vocab_size=len(tok),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=1,
            num_attention_heads=4,
            num_key_value_heads=2,
            pad_token_id=tok.pad_token_id,
            num_labels=1,
        )
    )
    before = {k: v.clone() for k, v in reward_model.state_dict().items()}
    config = small_config(updates=3, use_lora=False, learning_rate=3e-3)
    result = train_ppo(
        PROMPTS,
        config,
        tmp_path / "policy",
        reward=AnswerWordBonus(tok),
        policy=tiny_policy(tok),
        tokenizer=tok,
        value_model=reward_model,
    )

    assert result.steps == 3 and result.history[-1]["kl"] > 0  # the reference stayed where it was
    assert all(torch.equal(v, before[k]) for k, v in reward_model.state_dict().items())  # trained a copy
    assert result.history[-1]["value_loss"] > 0
