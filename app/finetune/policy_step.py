"""Which policy job is *the* step that improves the policy: the dashboard's "Improve the policy" action and
``bench/closed_loop.py``'s default ``--method``.

Chosen by measurement, not per preference (a team brings its own rules, so the default must carry to rules
nobody tuned it on). ``bench/closed_loop.py --rule R --method M`` on SmolLM2-135M, 400 simulated
judgements, 64 held-out pairs judged by the same rule (README, "Learning a preference it was not tuned
on", has the table): on the ``list`` rule, whose trait one answer in five shows, PPO's one sample per
prompt gave a 50.8 % win rate and online DPO's eight samples ranked by the reward model 75.0 %; online DPO then
won 73.4 % [61.5, 82.7] on ``digit`` and 56.2 % [44.1, 67.7] on ``no_first_person`` (81 % of its 400 verdicts
ties: 48-token answers rarely show the trait either way). Online DPO
finds a rare trait in 1 − (1 − p)^k of the prompts, PPO in p; RLOO samples k per prompt too but learns
from a noisy scalar advantage where online DPO trains on the clearest pair of each group.

On preferences nobody tuned it on (``bench/rules.py``'s held-out ``longer`` and ``second_person``) it won
96.9 % and, once the reward job trained at least ``min_steps`` steps on a small split, 78.9 % [67.4, 87.1]
against a ceiling of 82.9 % (60.2 % with a 12-step reward model); ``digit`` with that reward floor 89.1 %.
Under ``exclaim`` (one answer in sixty exclaims, 92 % of verdicts ties) it won 60.2 % until the reward job
learned from ties and online DPO trained only pairs the reward gives at least 0.7 (``min_confidence``):
92.2 % [83.0, 96.6]; ``example`` with both 77.3 %, inside its earlier runs' 76.6–82.8 %; ``second_person``
70.3 % [58.2, 80.1], under its earlier 76.6 and 78.9 % but inside their intervals. Over three seeds
``exclaim`` won 92.2, 55.5 and 65.6 % (71.1 ± 19.5) with 32, 20 and 15 decided verdicts: the pool's count
of decided pairs decides. With the pool steering every prompt that holds a pair its decision model
expects decided (not every other one), seed 1 drew 27 and won 84.4 % [73.6, 91.3] instead of 55.5 %.
"""

from __future__ import annotations

DEFAULT_POLICY_METHOD = "online_dpo"
# Every job kind that trains a new policy version, the default first (the order the dashboard offers them).
POLICY_METHODS: tuple[str, ...] = ("online_dpo", "ppo", "rloo", "dpo")
