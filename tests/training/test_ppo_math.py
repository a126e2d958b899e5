"""PPO mathematics against numbers worked out by hand (the arithmetic is in each comment)."""

import math

import pytest
import torch

from app.training.ppo.math import (
    AdaptiveKLController,
    FixedKLController,
    gae,
    kl_estimate,
    kl_k1,
    kl_k2,
    kl_k3,
    logprobs_from_logits,
    masked_entropy,
    masked_mean,
    masked_var,
    masked_whiten,
    policy_loss,
    token_entropy,
    token_rewards,
    value_loss,
)

torch.set_num_threads(1)


def t(values):
    """A float64 tensor, so hand numbers compare to 1e-6 without float32 noise."""
    return torch.tensor(values, dtype=torch.float64)


def close(actual, expected, tol: float = 1e-6) -> None:
    torch.testing.assert_close(actual, t(expected) if not torch.is_tensor(expected) else expected, atol=tol, rtol=0)


# --- masked statistics ---------------------------------------------------------------------------


def test_masked_mean_ignores_padding() -> None:
    values = t([[1.0, 2.0, 99.0], [3.0, 4.0, -7.0]])
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    # all: (1 + 2 + 3) / 3 = 2; per row: (1 + 2) / 2 = 1.5 and 3 / 1 = 3
    close(masked_mean(values, mask), 2.0)
    close(masked_mean(values, mask, dim=1), [1.5, 3.0])


def test_masked_mean_of_nothing_is_zero_not_nan() -> None:
    close(masked_mean(t([5.0, 6.0]), torch.tensor([0, 0])), 0.0)


def test_masked_var_biased_and_unbiased() -> None:
    values = t([[1.0, 2.0, 50.0], [3.0, 4.0, 50.0]])
    mask = torch.tensor([[1, 1, 0], [1, 1, 0]])
    # mean 2.5; squared deviations 2.25 + 0.25 + 0.25 + 2.25 = 5; biased 5/4, unbiased 5/3
    close(masked_var(values, mask, unbiased=False), 1.25)
    close(masked_var(values, mask), 5.0 / 3.0)


def test_masked_var_unbiased_needs_two_values() -> None:
    with pytest.raises(ValueError):
        masked_var(t([1.0, 2.0]), torch.tensor([1, 0]))


def test_masked_whiten() -> None:
    values = t([[1.0, 2.0, 99.0], [3.0, 4.0, -7.0]])
    mask = torch.tensor([[1, 1, 0], [1, 1, 0]])
    # mean 2.5, unbiased var 5/3, std sqrt(5/3) = 1.2909944; (x - 2.5) / std:
    # -1.5/1.2909944 = -1.1618950, -0.5/1.2909944 = -0.3872983; padding -> 0
    whitened = masked_whiten(values, mask)
    close(whitened, [[-1.1618950, -0.3872983, 0.0], [0.3872983, 1.1618950, 0.0]])
    # shift_mean=False keeps the mean: add 2.5 back to the real tokens
    kept = masked_whiten(values, mask, shift_mean=False)
    close(kept, [[1.3381050, 2.1127017, 0.0], [2.8872983, 3.6618950, 0.0]])


# --- GAE ------------------------------------------------------------------------------------------


def test_gae_three_steps_by_hand() -> None:
    rewards = t([[0.0, 0.0, 1.0], [0.0, 2.0, 9.0]])
    values = t([[0.5, 0.6, 0.7], [1.0, 1.0, 5.0]])
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])  # row 2 has 2 real tokens; 9.0 and 5.0 are padding
    advantages, returns = gae(rewards, values, mask, gamma=0.9, lam=0.8)  # γλ = 0.72
    # row 1: δ2 = 1 + 0.9·0 − 0.7 = 0.3            A2 = 0.3
    #        δ1 = 0 + 0.9·0.7 − 0.6 = 0.03         A1 = 0.03 + 0.72·0.3 = 0.246
    #        δ0 = 0 + 0.9·0.6 − 0.5 = 0.04         A0 = 0.04 + 0.72·0.246 = 0.21712
    # row 2: δ1 = 2 + 0.9·0 − 1 = 1 (it ends here) A1 = 1
    #        δ0 = 0 + 0.9·1 − 1 = −0.1             A0 = −0.1 + 0.72·1 = 0.62
    close(advantages, [[0.21712, 0.246, 0.3], [0.62, 1.0, 0.0]])
    # returns = A + V: 0.71712, 0.846, 1.0 and 1.62, 2.0, (padding) 0
    close(returns, [[0.71712, 0.846, 1.0], [1.62, 2.0, 0.0]])


def test_gae_with_gamma_and_lambda_one_is_reward_to_go_minus_value() -> None:
    rewards, values = t([[0.0, 0.0, 1.0]]), t([[0.5, 0.6, 0.7]])
    advantages, returns = gae(rewards, values, torch.ones(1, 3), gamma=1.0, lam=1.0)
    # A_t = (sum of rewards from t on) − V_t = 1 − 0.5, 1 − 0.6, 1 − 0.7; returns are all 1
    close(advantages, [[0.5, 0.4, 0.3]])
    close(returns, [[1.0, 1.0, 1.0]])


# --- KL and per-token rewards ------------------------------------------------------------------


def test_kl_estimators_on_hand_numbers() -> None:
    logp, logp_ref = t([-1.0]), t([-1.5])
    # k1 = −1 − (−1.5) = 0.5; k2 = ½·0.5² = 0.125
    # k3 = e^(−0.5) − 1 − (−0.5) = 0.6065307 − 0.5 = 0.1065307
    close(kl_k1(logp, logp_ref), [0.5])
    close(kl_k2(logp, logp_ref), [0.125])
    close(kl_k3(logp, logp_ref), [0.1065307])
    close(kl_estimate(logp, logp_ref, "k3"), [0.1065307])
    # k2 and k3 are never negative, k1 can be: swap the arguments
    close(kl_k1(logp_ref, logp), [-0.5])
    # k3 the other way: e^(0.5) − 1 − 0.5 = 1.6487213 − 1.5 = 0.1487213
    close(kl_k3(logp_ref, logp), [0.1487213])
    with pytest.raises(ValueError):
        kl_estimate(logp, logp_ref, "k4")  # type: ignore[arg-type]


def test_token_rewards_put_the_score_on_the_last_real_token() -> None:
    logp_ref = t([[-1.0, -1.0, -1.0], [-1.0, -1.0, -1.0]])
    logp = logp_ref + t([[0.5, 0.1, 0.2], [0.3, 0.0, 9.0]])  # 9.0 sits on padding
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    score = t([1.0, 2.0])
    rewards, kl = token_rewards(score, logp, logp_ref, mask, beta=0.1)
    # −0.1·k1: row 1 −0.05, −0.01, −0.02 + score 1 = 0.98; row 2 −0.03, 0 + score 2, padding 0
    close(rewards, [[-0.05, -0.01, 0.98], [-0.03, 2.0, 0.0]])
    close(kl, [[0.5, 0.1, 0.2], [0.3, 0.0, 0.0]])


def test_token_rewards_penalise_a_missing_eos() -> None:
    logp = t([[-1.0, -1.0], [-1.0, -1.0]])
    mask = torch.tensor([[1, 1], [1, 1]])
    has_eos = torch.tensor([True, False])
    rewards, _ = token_rewards(t([1.0, 2.0]), logp, logp, mask, beta=0.1, has_eos=has_eos, missing_eos_penalty=1.5)
    # KL is 0; row 1 keeps its score 1, row 2 (no EOS) gets 2 − 1.5 = 0.5
    close(rewards, [[0.0, 1.0], [0.0, 0.5]])


# --- losses --------------------------------------------------------------------------------------


def _ratios_batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    old_logp = t([[-1.0, -1.0, -1.0], [-1.0, -1.0, -1.0]])
    ratios = t([[1.5, 0.5, 1.1], [1.0, 0.5, 3.0]])  # 3.0 sits on padding
    logp = (old_logp + ratios.log()).requires_grad_()
    advantages = t([[1.0, 1.0, -1.0], [-1.0, -1.0, 5.0]])
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    return logp, old_logp, advantages, mask


def test_policy_loss_clip_fraction_and_approx_kl() -> None:
    logp, old_logp, advantages, mask = _ratios_batch()
    loss, clip_fraction, approx_kl = policy_loss(logp, old_logp, advantages, mask, clip_range=0.2)
    # per token max(−A·ρ, −A·clip(ρ, 0.8, 1.2)):
    #   ρ=1.5, A=1:  max(−1.5, −1.2) = −1.2 (clipped)    ρ=0.5, A=1:  max(−0.5, −0.8) = −0.5
    #   ρ=1.1, A=−1: max(1.1, 1.1) = 1.1                  ρ=1.0, A=−1: 1.0
    #   ρ=0.5, A=−1: max(0.5, 0.8) = 0.8 (clipped)
    # loss = (−1.2 − 0.5 + 1.1 + 1.0 + 0.8) / 5 = 0.24; clip fraction 2/5 = 0.4
    close(loss.detach(), 0.24)
    close(clip_fraction, 0.4)
    # approx KL = mean of ρ − 1 − ln ρ: 0.0945349 + 0.1931472 + 0.0046898 + 0 + 0.1931472
    #           = 0.4855191 / 5 = 0.0971038
    close(approx_kl, 0.0971038)
    loss.backward()
    # d/dlogp of −A·ρ/5 = −A·ρ/5 where unclipped; 0 where the clip is active or on padding
    close(logp.grad, [[0.0, -0.1, 0.22], [0.2, 0.0, 0.0]])


def test_value_loss_clips_large_moves() -> None:
    values, old_values, returns = t([1.0, 2.5]), t([0.5, 2.0]), t([0.0, 3.0])
    loss, clip_fraction = value_loss(values, old_values, returns, torch.ones(2), clip_range=0.2)
    # token 1: V_clip = 0.5 + 0.2 = 0.7; max((1 − 0)², (0.7 − 0)²) = max(1, 0.49) = 1
    # token 2: V_clip = 2.0 + 0.2 = 2.2; max((2.5 − 3)², (2.2 − 3)²) = 0.64 (clipped)
    # loss = ½ · (1 + 0.64) / 2 = 0.41; clip fraction 1/2
    close(loss, 0.41)
    close(clip_fraction, 0.5)


# --- distributions from logits -------------------------------------------------------------------


def test_logprobs_from_logits_divides_by_temperature() -> None:
    logits = t([[[0.0, math.log(3.0)]]])  # (B=1, T=1, V=2): softmax = [1/4, 3/4]
    labels = torch.tensor([[1]])
    # log 3/4 = −0.2876821
    close(logprobs_from_logits(logits, labels), [[-0.2876821]])
    # at temperature 2 the logits are [0, ln3 / 2]: p = √3 / (1 + √3) = 1.7320508 / 2.7320508
    # = 0.6339746; ln p = ln √3 − ln(1 + √3) = 0.5493061 − 1.0050525 = −0.4557464
    close(logprobs_from_logits(logits, labels, temperature=2.0), [[-0.4557464]])
    with pytest.raises(ValueError):
        logprobs_from_logits(logits, labels, temperature=0.0)


def test_entropy_from_logits_masked() -> None:
    logits = t([[[0.0, 0.0, 0.0, 0.0], [0.0, math.log(3.0), -1e9, -1e9], [5.0, 1.0, 0.0, 2.0]]])
    mask = torch.tensor([[1, 1, 0]])
    # uniform over 4: ln 4 = 1.3862944
    # [1/4, 3/4]: ¼·ln 4 + ¾·ln(4/3) = 0.3465736 + 0.2157616 = 0.5623351
    close(token_entropy(logits)[0, :2], [1.3862944, 0.5623351])
    # masked mean over the two real tokens: (1.3862944 + 0.5623351) / 2 = 0.9743148
    close(masked_entropy(logits, mask), 0.9743148)


# --- β controllers -------------------------------------------------------------------------------


def test_fixed_controller_never_moves() -> None:
    controller = FixedKLController(0.05)
    assert controller.update(current_kl=100.0, n_steps=256) == 0.05
    assert controller.value == 0.05


def test_adaptive_controller_on_hand_numbers() -> None:
    controller = AdaptiveKLController(value=0.1, target=6.0, horizon=10_000)
    # KL 9: error 9/6 − 1 = 0.5, clipped to 0.2; β = 0.1 · (1 + 0.2·256/10000) = 0.1 · 1.00512
    assert controller.update(current_kl=9.0, n_steps=256) == pytest.approx(0.100512, abs=1e-12)
    # KL 5.4: error 5.4/6 − 1 = −0.1; β = 0.100512 · (1 − 0.1·256/10000) = 0.100512 · 0.99744
    #       = 0.100512 − 0.000257311 = 0.100254689
    assert controller.update(current_kl=5.4, n_steps=256) == pytest.approx(0.100254689, abs=1e-9)
    # KL 0: error −1, clipped to −0.2; β shrinks by 1 − 0.2·256/10000 = 0.99488
    assert controller.update(current_kl=0.0, n_steps=256) == pytest.approx(0.100254689 * 0.99488, abs=1e-9)


def test_adaptive_controller_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        AdaptiveKLController(value=0.1, target=0.0, horizon=10)
