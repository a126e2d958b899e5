"""The PPO trainer in two processes (torchrun, gloo on the CPU) does the update one process does.

Both runs use the same seed and the same global batch (8 prompts per update: 8 on one process, 4 on each of
two). Samples are drawn from per-response random streams and every batch-wide statistic is summed across
processes, so the two runs must agree up to floating-point rounding: the same prompts, the same responses,
the same metrics and the same merged weights. Each rank also records the prompts its reward function
scored, which shows that both took part and split every batch between them.

This file is also the worker: ``torchrun --standalone --nproc_per_node 2 test_ppo_distributed.py OUT``.
"""

from __future__ import annotations

from pathlib import Path

from two_ranks import launch_two_ranks, this_rank, worker_main  # a sibling module: pytest and torchrun both find it

UPDATES, BATCH = 3, 8


def config():
    from app.training.ppo.config import PPOConfig

    # One minibatch per epoch: with several, one process shuffles 8 rows where two shuffle 4 each. Micro-batches
    # of 2 sequences: gradients accumulate (DDP synchronises only the last) into the same update.
    return PPOConfig(
        batch_size=BATCH,
        num_minibatches=1,
        ppo_epochs=2,
        response_length=8,
        updates=UPDATES,
        micro_batch_size=2,
        learning_rate=1e-2,
        missing_eos_penalty=0.5,
        checkpoint_every=0,
        num_threads=1,
        use_cpu=True,
    )


def run(out: Path) -> dict:
    """One training run (on however many processes launched this one); returns what this rank saw."""
    from test_ppo_trainer import PROMPTS, AnswerWordBonus, tiny_policy, wordlevel_tokenizer

    from app.training.ppo.trainer import train_ppo

    tok = wordlevel_tokenizer()
    reward = AnswerWordBonus(tok)
    result = train_ppo(PROMPTS, config(), out / "policy", reward=reward, policy=tiny_policy(tok), tokenizer=tok)
    return {**this_rank(), "prompts": reward.prompts_seen, "history": result.history}


def load_weights(folder: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


def test_two_processes_train_like_one(tmp_path) -> None:
    import pytest
    import torch

    single = run(tmp_path / "single")
    ranks = launch_two_ranks(__file__, tmp_path / "dual")

    assert [r["rank"] for r in ranks] == [0, 1] and all(r["world"] == 2 for r in ranks)
    half = BATCH // 2
    for update in range(UPDATES):  # each update's global batch, split in two halves between the ranks
        shares = [r["prompts"][update * half : (update + 1) * half] for r in ranks]
        assert shares[0] + shares[1] == single["prompts"][update * BATCH : (update + 1) * BATCH]
    for one, two in zip(single["history"], ranks[0]["history"], strict=True):
        assert two == pytest.approx(one, rel=1e-3, abs=1e-4)
    assert ranks[0]["history"] == ranks[1]["history"]  # every rank reports the global figures
    assert single["history"][-1]["kl"] > 0.01  # the policy moved, so agreement means the updates agreed
    expected, got = load_weights(tmp_path / "single" / "policy"), load_weights(tmp_path / "dual" / "policy")
    assert expected.keys() == got.keys()
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=1e-3, atol=1e-4, msg=name)


if __name__ == "__main__":
    worker_main(run)
