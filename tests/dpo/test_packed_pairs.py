"""A pair packed into one row ``[prompt | chosen | rejected]`` gives the policy the log-probs, the loss and the
gradients of the two padded sequences, and the trainers fall back to padding for a policy that cannot read
packed rows."""

from __future__ import annotations

import pytest
import torch

from app.training.dpo.config import DPOConfig
from app.training.dpo.data import DPOCollator, PackedDPOCollator, pair_collator, pair_row, sequence_logprobs
from app.training.dpo.policy import build_policy
from app.training.dpo.step import dpo_step
from tests.training.test_ppo_trainer import tiny_policy, wordlevel_tokenizer

PAD = 0


def rows() -> list[dict]:
    """Pairs of unequal prompt and answer lengths (so both layouts pad), reference log-probs attached."""
    shapes = [(5, 3, 7), (2, 6, 1), (9, 4, 4), (3, 1, 8)]
    g = torch.Generator().manual_seed(0)
    out = []
    for p, c, r in shapes:
        ids = torch.randint(3, 30, (p + c + r,), generator=g).tolist()
        row = pair_row(ids[:p], ids[p : p + c], ids[p + c :], margin=0.5)
        row["ref_chosen"], row["ref_rejected"] = -float(c), -float(r)
        out.append(row)
    return out


def policy(use_lora: bool, attn: str = "sdpa"):
    tok = wordlevel_tokenizer()
    lm = tiny_policy(tok, seed=1, init=0.3)
    lm.config._attn_implementation = attn
    lora = {"use_lora": True, "lora_target_modules": "q_proj,v_proj"} if use_lora else {"lora_target_modules": ""}
    model, _, _ = build_policy(DPOConfig(use_cpu=True, num_threads=1, **lora), lm, tok)
    if use_lora:  # adapters away from their zero start, so the packed path is checked through them too
        with torch.no_grad():
            for name, p in model.named_parameters():
                if "lora_B" in name:
                    p.normal_(0, 0.3)
    return model.eval()


@pytest.mark.parametrize(("use_lora", "attn"), [(False, "sdpa"), (True, "sdpa"), (False, "eager")])
def test_packed_rows_give_the_padded_sequences_log_probs(use_lora: bool, attn: str) -> None:
    model, batch = policy(use_lora, attn), rows()
    plain = sequence_logprobs(model, DPOCollator(PAD)(batch))
    packed = sequence_logprobs(model, PackedDPOCollator(PAD, additive=attn == "eager")(batch))
    torch.testing.assert_close(packed, plain, atol=1e-5, rtol=1e-5)
    assert plain.abs().min() > 0.1  # real log-probs, not an all-masked zero


def test_packed_rows_give_the_padded_sequences_loss_and_gradients() -> None:
    model, batch = policy(use_lora=True), rows()
    grads = []
    for collate in (DPOCollator(PAD), PackedDPOCollator(PAD)):
        model.zero_grad(set_to_none=True)
        loss, _ = dpo_step(model, collate(batch), beta=0.1, loss_type="sigmoid")
        loss.backward()
        grads.append((loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}))
    (plain_loss, plain_grads), (packed_loss, packed_grads) = grads
    torch.testing.assert_close(packed_loss, plain_loss, atol=1e-6, rtol=1e-5)
    assert plain_grads and any(g.abs().sum() > 0 for g in plain_grads.values())
    for name, grad in plain_grads.items():
        torch.testing.assert_close(packed_grads[name], grad, atol=1e-6, rtol=1e-4, msg=name)


def test_a_packed_row_holds_the_prompt_once_and_reads_each_answer_after_it() -> None:
    batch = PackedDPOCollator(PAD)([pair_row([7, 8], [9, 10, 11], [12])])
    assert batch["input_ids"].tolist() == [[7, 8, 9, 10, 11, 12]]
    assert batch["position_ids"].tolist() == [[0, 1, 2, 3, 4, 2]]
    # chosen tokens 9, 10, 11 are predicted at 8, 9, 10; the rejected 12 at the prompt's last token, 8
    assert batch["read_cols"].tolist() == [[1, 2, 3], [1, 0, 0]]
    assert batch["mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    mask = batch["attention_mask"][0, 0]
    assert not bool(mask[5, 2:5].any())  # the rejected answer never sees the chosen one
    assert bool(mask[5, :2].all())  # but sees the whole prompt
    assert PackedDPOCollator.length(pair_row([7, 8], [9, 10, 11], [12])) == 6


def test_a_pair_without_a_prompt_token_is_refused() -> None:
    with pytest.raises(ValueError, match="prompt token"):
        PackedDPOCollator(PAD)([pair_row([], [1, 2], [3])])


def test_the_trainers_pack_only_for_a_policy_that_reads_packed_rows_right(monkeypatch: pytest.MonkeyPatch) -> None:
    model = policy(use_lora=False)
    assert isinstance(pair_collator(model, rows(), PAD), PackedDPOCollator)
    # A backbone that drops the explicit positions reads the rejected answer at the wrong places.
    trunk_forward = type(model.trunk).forward

    def without_positions(self, *args, **kwargs):
        kwargs["position_ids"] = None
        return trunk_forward(self, *args, **kwargs)

    monkeypatch.setattr(type(model.trunk), "forward", without_positions)
    assert isinstance(pair_collator(model, rows(), PAD), DPOCollator)
