"""A worker SIGKILLed in the middle of an ``online_dpo`` job: the job is re-queued when its lease runs out, the
next worker resumes after the last round it checkpointed (the rounds before it are not run again), and exactly
one policy version is registered. Real worker processes, real database (mirrors tests/ppo/test_crash_resume.py)."""

from __future__ import annotations

from tests.dpo.conftest import TINY_ONLINE
from tests.policy_resume import assert_resumed_once, kill_and_resume_policy_job
from tests.rewards.conftest import scratch_sessions  # noqa: F401 - a fixture

ROUNDS = 40


def test_a_killed_online_dpo_job_resumes_after_its_last_round_and_registers_exactly_once(
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
        kind="online_dpo",
        params={**TINY_ONLINE, "rounds": ROUNDS},
        metric="score_mean",
    )
    job = run.job
    resumed = job.result["resumed_from_round"]
    assert resumed >= 1 and f"resumed from the checkpoint after round {resumed}/{ROUNDS}" in job.log_tail
    assert job.result["rounds"] == ROUNDS
    assert_resumed_once(scratch_sessions, run, resumed=resumed, total=ROUNDS)
