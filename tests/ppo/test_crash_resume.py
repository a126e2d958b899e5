"""Acceptance 5: a worker SIGKILLed in the middle of a PPO job — the job is re-queued when its lease runs
out, the next worker resumes from the last checkpoint (the updates before it are not run again), and
exactly one policy version is registered. Real worker processes, real database."""

from __future__ import annotations

from tests.policy_resume import assert_resumed_once, kill_and_resume_policy_job
from tests.ppo.conftest import TINY_PPO
from tests.rewards.conftest import scratch_sessions  # noqa: F401 - a fixture

UPDATES = 40


def test_a_killed_ppo_job_resumes_from_its_checkpoint_and_registers_exactly_once(
    scratch_db_url,
    scratch_sessions,  # noqa: F811 - the imported fixture, requested by name
    tmp_path,
    tiny_backbone,
    scorer_folders,
):
    run = kill_and_resume_policy_job(
        scratch_db_url,
        scratch_sessions,
        tmp_path,
        tiny_backbone,
        scorer_folders["reward"],
        kind="ppo",
        params={**TINY_PPO, "updates": UPDATES, "checkpoint_every": 2},
        metric="score",
    )
    job = run.job
    resumed = job.result["resumed_from_update"]
    assert (
        resumed >= 2
        and resumed % 2 == 0
        and f"resumed from the checkpoint at update {resumed}/{UPDATES}" in job.log_tail
    )
    assert_resumed_once(scratch_sessions, run, resumed=resumed, total=UPDATES)
