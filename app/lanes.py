"""Worker lanes: job kinds grouped by what they hold up, so a short job never waits behind a long one.

A serial worker made a 2-second export wait minutes behind a generate job and let the pair pool run dry
while a reward model trained. Each job kind now names its lane; a worker runs a number of job slots per
lane, each slot claiming only its lane's kinds, so one job per lane (by default) runs at once:

- ``generation``: filling the pair pool, SELF-INSTRUCT, the first-start install of the default policy
  (the pool cannot start before it, and so waits for it in the same lane);
- ``training``: every trainer (reward, classifier, SFT, PPO, RLOO, DPO, online DPO); one at a time on a
  CPU box, where two would only share the cores; more where there are accelerators;
- ``short``: export, import, scoring (a reward model's agreement, the uncertain queue's ranking): seconds to
  a minute of work that must not queue behind the other two.

A kind that names no lane is a ``training`` kind: unknown work is treated as heavy.

Kept outside ``app.jobs`` so that the settings, which ``app.jobs`` reads, can validate a lane spec
without an import cycle.
"""

from __future__ import annotations

import enum


class Lane(enum.StrEnum):
    generation = "generation"
    training = "training"
    short = "short"


DEFAULT_LANES = "generation:1,training:1,short:1"
MAX_SLOTS_PER_LANE = 16


def parse_lanes(spec: str) -> dict[Lane, int]:
    """``"training:2,short"`` → {training: 2, short: 1}: the lanes a worker serves and its slots in each.

    Raises ``ValueError`` naming the bad part, for the settings' and the CLI's error messages."""
    lanes: dict[Lane, int] = {}
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        name, _, count = part.partition(":")
        name = name.strip()
        if name not in Lane.__members__:
            raise ValueError(f"unknown lane {name!r}; lanes are {', '.join(Lane)}")
        if name in lanes:
            raise ValueError(f"lane {name!r} is named twice")
        try:
            slots = int(count) if count.strip() else 1
        except ValueError:
            raise ValueError(f"lane {name!r}: {count.strip()!r} is not a whole number of slots") from None
        if not 1 <= slots <= MAX_SLOTS_PER_LANE:
            raise ValueError(f"lane {name!r}: slots must be 1-{MAX_SLOTS_PER_LANE}, not {slots}")
        lanes[Lane(name)] = slots
    if not lanes:
        raise ValueError(f"name at least one lane ({', '.join(Lane)}), e.g. {DEFAULT_LANES!r}")
    return lanes
