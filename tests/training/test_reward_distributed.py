"""The reward trainer in two processes (torchrun, gloo on the CPU) trains the model one process trains.

Same seed, same global batch: one process with 8 pairs per step against two processes with 4 each. With
``group_by_length=False`` the batch sampler deals global batch k of the single run out as the two halves of
step k, and DDP averages the two halves' gradients into the full batch's, so the saved models must agree
up to floating-point rounding. Each rank records the steps and pairs it trained on, to show both took part.

This file is also the worker: ``torchrun --standalone --nproc_per_node 2 test_reward_distributed.py OUT``.
"""

from __future__ import annotations

import os
from pathlib import Path

from two_ranks import launch_two_ranks, this_rank, worker_main  # a sibling module: pytest and torchrun both find it

PAIRS, GLOBAL_BATCH = 64, 8


def run(out: Path, batch_size: int) -> dict:
    """One reward-model run on however many processes launched this one; returns what this rank trained on."""
    from conftest import make_preferences

    import app.training.reward.trainer as reward_trainer
    from app.training.core.default_models import load_smollm2_tokenizer
    from app.training.core.tiny import tiny_llama
    from app.training.reward.config import RewardConfig

    seen = {"steps": 0, "pairs": 0}
    step = reward_trainer.reward_step

    def counting_step(model, batch, **kwargs):
        seen["steps"] += 1
        seen["pairs"] += batch["margin"].shape[0]  # one margin per pair, however the pairs are packed
        return step(model, batch, **kwargs)

    reward_trainer.reward_step = counting_step
    tok = load_smollm2_tokenizer(Path(os.environ.get("TMPDIR", "/tmp")) / "rlhf-smollm2-tokenizer")
    config = RewardConfig(
        learning_rate=1e-3,
        epochs=1,
        min_steps=0,  # one pass, whatever the split's size: the steps are what the test counts
        batch_size=batch_size,
        group_by_length=False,
        validation_fraction=0.0,
        checkpoint_every=0,
        log_every=1,
        num_threads=1,
        use_cpu=True,
    )
    try:
        reward_trainer.train_reward_model(
            make_preferences(PAIRS), config, out / "rm", backbone=tiny_llama(tok), tokenizer=tok
        )
    finally:
        reward_trainer.reward_step = step
    return {**this_rank(), **seen}


def test_two_processes_train_the_reward_model_one_process_trains(tmp_path, smollm2_tokenizer, preferences) -> None:
    import torch
    from safetensors.torch import load_file

    from app.training.reward.scoring import RewardScorer

    single = run(tmp_path / "single", GLOBAL_BATCH)
    ranks = launch_two_ranks(__file__, tmp_path / "dual")

    assert single == {"rank": 0, "world": 1, "steps": PAIRS // GLOBAL_BATCH, "pairs": PAIRS}
    for rank, seen in enumerate(ranks):  # both trained every step, on half of each global batch
        assert seen == {"rank": rank, "world": 2, "steps": PAIRS // GLOBAL_BATCH, "pairs": PAIRS // 2}
    for name in ("model.safetensors", "head.safetensors"):
        expected, got = (load_file(str(tmp_path / run / "rm" / name)) for run in ("single", "dual"))
        assert expected.keys() == got.keys()
        for key in expected:  # the head has no bias, whose gradient under −log σ(r_w − r_l) was rounding noise
            torch.testing.assert_close(got[key], expected[key], rtol=1e-3, atol=1e-4, msg=key)
    fresh = preferences(8, seed=7)
    pairs = [(e.prompt, e.chosen) for e in fresh] + [(e.prompt, e.rejected) for e in fresh]
    one = torch.tensor(RewardScorer(tmp_path / "single" / "rm", device="cpu").score(pairs))
    two = torch.tensor(RewardScorer(tmp_path / "dual" / "rm", device="cpu").score(pairs))
    torch.testing.assert_close(two[:8] - two[8:], one[:8] - one[8:], rtol=1e-3, atol=1e-4)  # the preferences
    assert (one[:8] > one[8:]).all()  # and they learnt something


if __name__ == "__main__":
    worker_main(lambda out: run(out, GLOBAL_BATCH // int(os.environ["WORLD_SIZE"])))
