"""The whole RLHF loop through the real HTTP API, with a simulated annotator whose taste is a simple rule.

Each run starts ``rlhf serve`` (with its embedded worker) on a fresh data folder, which installs the
default policy (SmolLM2-135M-Instruct) and the starter prompts and starts filling the pair pool. Then,
through ``/api/v1`` only:

1. judge N pool pairs (``/annotation/next`` + ``/annotation/judgements``) by the rule;
2. start a ``reward`` job (Bradley–Terry on those judgements) and wait for it — skipped when the policy
   job's kind takes no reward version (``dpo`` learns from the judgements themselves);
   under the ``safe`` rule the annotator also labels each answer safe or unsafe, and a ``classifier``
   job (safety head) is trained on those labels;
3. start the policy job (``--method``: the default policy step, ``online_dpo``, or ``ppo``, ``rloo``, ``dpo``) against
   that reward version (and classifier: PPO's safety penalty) on the same (training) prompts;
4. switch the pool to a held-out prompt set and promote the new policy: the pool retires the old
   policy's pairs and generates cross-version pairs, new vs old;
5. judge those by the same rule and read the human (here: simulated) verdict off the leaderboard API.

The rules are in ``bench/rules.py``: shorter (length), question and list (form), digit and on_topic
(content), no_first_person and no_preamble (style), safe (safety). A rule says "tie" when both answers
have its trait or neither has; ties train nothing and count half on the evaluation pairs, so each run
reports its tie share. ``--rule all`` (or ``--rule a,b,c``) runs rules in turn, each on its own fresh
server and data folder, and ``--seeds N`` repeats each over N seeds (mean ± sd of the win rate).

Per run it reports the reward model's validation accuracy, the new policy's win rate against the old
under the rule (ties count half) with a 95 % Wilson score interval over the held-out pairs (it covers
the evaluation's sampling noise, not the training's: the seeds show that), the mean KL per token to the
old policy during the last quarter of training (the trained policy's), and the wall time of each phase.
A table sums the runs up; the last line is one JSON object.

    nice -n 10 .venv/bin/python bench/closed_loop.py                    # the acceptance run (≈ 20-30 min)
    .venv/bin/python bench/closed_loop.py --profile tiny                # a smoke run on a tiny random policy
    .venv/bin/python bench/closed_loop.py --rule question --pairs 600   # prefers answers ending with '?'
    .venv/bin/python bench/closed_loop.py --rule all                    # every rule in turn (≈ 4 h)
    .venv/bin/python bench/closed_loop.py --rule safe,digit --seeds 3   # two rules, seeds 0, 1, 2
    .venv/bin/python bench/closed_loop.py --rule my_taste.py:prefers_formal  # a preference of your own
    .venv/bin/python bench/closed_loop.py --method rloo --param learning_rate=5e-4  # another policy job kind
    .venv/bin/python bench/closed_loop.py --database-url postgresql://postgres@127.0.0.1:5432/rlhf_loop
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.config import Settings
from app.finetune.policy_step import DEFAULT_POLICY_METHOD, POLICY_METHODS
from bench.rules import KINDS, RULES, SAFETY_RULES, TRAITS, Rule, labels, load_rule, prompt_text, win_ceiling
from tests.server import running_server  # the same way the end-to-end tests start the server

HELDOUT = Path(__file__).with_name("closed_loop_heldout.jsonl")
ADMIN_PASSWORD = "closed-loop-admin-password"
ANNOTATOR = ("sim-annotator", "closed-loop-annotator-password")
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
SCREEN = {"a": "A", "b": "B", "tie": "tie"}  # a rule's verdict → the judgement API's choice (sides as shown)
# The policy job's links to the rest of the run, each sent only when the kind's parameter schema has it.
LINKS = ("policy_version_id", "reward_version_id", "classifier_version_id", "prompt_set_ids", "seed")
Z95 = 1.959963984540054  # the standard normal's 97.5 % quantile
# The pool samples as PPO's rollouts do (temperature 0.7, no nucleus cut): the judged pairs, the training
# samples and the evaluation pairs come from one distribution, and no sort over the vocabulary per token.
SAMPLING = {"RLHF_POOL_TEMPERATURE": "0.7", "RLHF_POOL_TOP_P": "1.0"}


@dataclass
class Profile:
    """What one run does: how many judgements, the server's pool settings, the jobs' parameters."""

    name: str
    pairs: int
    eval_pairs: int
    server_env: dict[str, str]
    reward: dict[str, Any]  # the reward job's; the classifier job (safety rules) takes the same
    ppo: dict[str, Any]  # the policy job's defaults; a kind that lacks one of these fields is not sent it
    timeout_s: float = 3600.0


def real_profile() -> Profile:
    """The default SmolLM2 policy, a MiniLM reward model and the policy job's own defaults (whatever
    ``--method`` is); sized to finish within 30 min on 2 cores."""
    pool = {
        "RLHF_POOL_TARGET": "64",
        "RLHF_POOL_MAX_PAIRS_PER_JOB": "64",
        "RLHF_POOL_BATCH_PROMPTS": "32",
        "RLHF_POOL_MAX_NEW_TOKENS": "48",
        **SAMPLING,
    }
    cores = {"num_threads": os.cpu_count() or 1}  # each job runs alone, the generator idle: every core
    reward = {
        "epochs": 2,
        "batch_size": 16,
        "learning_rate": 5e-5,
        "max_length": 128,
        "validation_fraction": 0.15,
        **cores,
    }
    return Profile(
        name="real", pairs=400, eval_pairs=64, server_env=pool, reward=reward, ppo=cores
    )  # else the policy job's defaults


def tiny_profile() -> Profile:
    """A tiny random Llama: every phase runs, in a few minutes; the figures mean nothing."""
    pool = {
        "RLHF_POOL_TARGET": "16",
        "RLHF_POOL_MAX_PAIRS_PER_JOB": "16",
        "RLHF_POOL_BATCH_PROMPTS": "8",
        "RLHF_POOL_MAX_NEW_TOKENS": "12",
        **SAMPLING,
    }
    reward = {"epochs": 1, "batch_size": 8, "learning_rate": 1e-3, "max_length": 128, "validation_fraction": 0.25}
    ppo = {
        "updates": 3,
        "batch_size": 4,
        "num_minibatches": 1,
        "ppo_epochs": 1,
        "response_length": 12,
        "learning_rate": 1e-3,
        "checkpoint_every": 0,
    }
    return Profile(name="tiny", pairs=40, eval_pairs=16, server_env=pool, reward=reward, ppo=ppo, timeout_s=900.0)


PROFILES = {"real": real_profile, "tiny": tiny_profile}


class Api:
    """A Bearer-token client of ``/api/v1`` that stops the run on any unexpected answer."""

    def __init__(self, base: str, token: str) -> None:
        self.http = httpx.Client(base_url=base + "/api/v1", headers={"Authorization": f"Bearer {token}"}, timeout=120)

    def call(self, method: str, path: str, *, ok: tuple[int, ...] = (200, 201), **kwargs: Any) -> Any:
        answer = self.http.request(method, path, **kwargs)
        if answer.status_code not in ok:
            raise SystemExit(f"{method} {path} answered {answer.status_code}: {answer.text[:1000]}")
        return answer.json() if answer.content else None

    def wait_job(self, job_id: int, timeout_s: float) -> dict[str, Any]:
        """Poll a job until it ends, echoing its progress; a failed job stops the run with its error."""
        deadline, said = time.monotonic() + timeout_s, ""
        while time.monotonic() < deadline:
            job = self.call("GET", f"/jobs/{job_id}")
            if job["progress_message"] != said:
                said = job["progress_message"]
                print(f"    job {job_id} ({job['kind']}) {job['progress']:.0%} {said}", flush=True)
            if job["status"] == "succeeded":
                return job
            if job["status"] in ("failed", "cancelled"):
                log = self.call("GET", f"/jobs/{job_id}/log")["log"]
                raise SystemExit(f"job {job_id} {job['status']}: {job['error']}\n{log[-3000:]}")
            time.sleep(2)
        raise SystemExit(f"job {job_id} did not finish within {timeout_s:.0f} s")


def api_token(base: str, username: str, password: str) -> str:
    """Log in through the login form and create an API token with the session's CSRF token."""
    with httpx.Client(base_url=base, timeout=60) as web:
        form = CSRF.search(web.get("/login").text)
        done = web.post("/login", data={"username": username, "password": password, "csrf_token": form.group(1)})
        if done.status_code != 303:
            raise SystemExit(f"login as {username} failed: {done.status_code}")
        csrf = CSRF.search(web.get("/").text).group(1)
        created = web.post("/api/v1/tokens", json={"name": "closed-loop"}, headers={"x-csrf-token": csrf})
        created.raise_for_status()
        return created.json()["token"]


@dataclass
class Loop:
    """The running server as the bench drives it."""

    researcher: Api  # the admin's token: researcher and admin routes
    annotator: Api
    rule_name: str
    rule: Rule
    profile: Profile
    phases: dict[str, float] = field(default_factory=dict)
    unsafe_labels: int = 0  # answers the annotator labelled unsafe, training and evaluation pairs together
    labels_sent: int = 0
    with_trait: int = 0  # answers with the rule's preferred trait (a trait rule), training pairs only
    answers_seen: int = 0
    database_url: str = ""  # the server's database, read once after the evaluation (trait shares by version)

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        print(f"--- {name}", flush=True)
        start = time.monotonic()
        yield
        self.phases[name] = round(time.monotonic() - start, 1)
        print(f"    {name}: {self.phases[name]:.0f} s", flush=True)

    def policy_v0_and_prompts(self) -> tuple[int, int]:
        """Wait for the first-start bootstrap: the promoted policy's id and the starter set's id."""
        deadline = time.monotonic() + self.profile.timeout_s
        while time.monotonic() < deadline:
            promoted = [
                v
                for v in self.researcher.call("GET", "/models", params={"kind": "policy"})
                if v["status"] == "promoted"
            ]
            sets = [s for s in self.researcher.call("GET", "/prompt-sets") if s["status"] == "active"]
            if promoted and sets:
                return promoted[0]["id"], sets[0]["id"]
            time.sleep(2)
        raise SystemExit("the first-start bootstrap did not finish")

    def kind_fields(self, kind: str) -> set[str]:
        """The parameter names of a job kind, from its schema; a kind the server lacks stops the run early."""
        kinds = {k["name"]: k["params_schema"] for k in self.researcher.call("GET", "/jobs/kinds")}
        if kind not in kinds:
            raise SystemExit(f"this server has no {kind!r} job kind (it has: {', '.join(sorted(kinds))})")
        return set(kinds[kind].get("properties", {}))

    def judge(self, count: int, *, retire_when_enough: int | None = None, training: bool = False) -> dict[str, int]:
        """Judge ``count`` pairs from the pool by the rule, waiting for the generator when it is empty;
        ``training``: the old policy's pairs, whose answers also count towards the trait share.

        With ``retire_when_enough`` (a prompt set), that set is retired as soon as the pool holds the pairs
        still to judge, so the generator stops after its current batch instead of refilling the pool."""
        verdicts = {"a": 0, "b": 0, "tie": 0}
        deadline = time.monotonic() + self.profile.timeout_s
        while sum(verdicts.values()) < count:
            judged = sum(verdicts.values())
            if (
                retire_when_enough is not None
                and judged % 8 == 0
                and judged + self.researcher.call("GET", "/pool")["pending_total"] >= count
            ):
                self.set_status(retire_when_enough, "retired")
                retire_when_enough = None
            shown = self.annotator.http.get("/annotation/next")
            if shown.status_code == 204:
                if time.monotonic() > deadline:
                    raise SystemExit(f"the pool stayed empty after {sum(verdicts.values())} judgements")
                time.sleep(1)
                continue
            pair = shown.json()
            prompt, a, b = prompt_text(pair["messages"]), pair["responses"]["A"], pair["responses"]["B"]
            verdict = self.rule(prompt, a, b)
            if training:
                trait = TRAITS.get(self.rule_name)
                self.with_trait += 0 if trait is None else trait(a) + trait(b)
                self.answers_seen += 2
            sides = labels(self.rule_name, a, b)
            body = {"assignment_id": pair["assignment_id"], "choice": SCREEN[verdict], "labels": sides}
            self.annotator.call(
                "POST", "/annotation/judgements", json=body if verdict == "tie" else {**body, "strength": 2}
            )
            verdicts[verdict] += 1
            self.labels_sent += 2
            self.unsafe_labels += sum(side["safety"] == "unsafe" for side in sides.values())
            if sum(verdicts.values()) % 50 == 0:
                print(f"    {sum(verdicts.values())}/{count} judged {verdicts}", flush=True)
        return verdicts

    def run_job(self, kind: str, params: dict[str, Any]) -> dict[str, Any]:
        job = self.researcher.call("POST", "/jobs", json={"kind": kind, "params": params})
        return self.researcher.wait_job(job["id"], self.profile.timeout_s)

    def set_status(self, set_id: int, status: str) -> None:
        self.researcher.call("PATCH", f"/prompt-sets/{set_id}", json={"status": status})

    def heldout_set(self) -> int:
        """The held-out prompts as a retired set: the pool ignores them until the evaluation."""
        created = self.researcher.call(
            "POST", "/prompt-sets", json={"name": "closed-loop-heldout", "status": "retired"}
        )
        with HELDOUT.open("rb") as stream:
            self.researcher.call(
                "POST",
                f"/prompt-sets/{created['id']}/import",
                files={"file": (HELDOUT.name, stream, "application/jsonl")},
            )
        return created["id"]


def kl_per_token(api: Api, job_id: int) -> tuple[float | None, float | None, list[dict[str, float]]]:
    """Σ KL / Σ tokens over the last quarter of the updates (the trained policy) and over all of them,
    and per update: KL per response, response length, mean reward-model score and β (how it got there).
    A job that logs ``kl_per_token`` (online DPO, once per round) is averaged over its rounds as logged; one
    that logs ``policy_kl_per_token`` (online DPO under its KL budget: the saved policy's own, measured after its
    last round, or the kept one's when a round went over budget) gives that as the trained policy's.
    None, None, [] when the job logged no ``kl`` and ``response_length`` curves (a kind that has none)."""

    def series(name: str) -> dict[int, float]:
        return {m["step"]: m["value"] for m in api.call("GET", f"/jobs/{job_id}/metrics", params={"name": name})}

    kl, length, score, beta = series("kl"), series("response_length"), series("score"), series("beta")
    per_token = series("kl_per_token")  # online DPO logs it per round, over the answers it scored
    if per_token:
        kl, length = per_token, dict.fromkeys(per_token, 1.0)
    steps = sorted(set(kl) & set(length))
    if not steps:
        return None, None, []
    last = steps[-max(1, len(steps) // 4) :]
    saved = series("policy_kl_per_token")
    trace = [
        {
            "update": s,
            "kl": round(kl[s], 3),
            "length": round(length[s], 1),
            "score": round(score.get(s, 0), 3),
            "beta": round(beta.get(s, 0), 4),
        }
        for s in steps
    ]
    return (
        saved[max(saved)] if saved else sum(kl[s] for s in last) / max(sum(length[s] for s in last), 1e-9),
        sum(kl[s] for s in steps) / max(sum(length[s] for s in steps), 1e-9),
        trace,
    )


def win_rate(api: Api, new_id: int, old_id: int) -> tuple[float, int]:
    """The new version's observed win rate against the old one (ties half) and the battles, per the leaderboard."""
    board = api.call("GET", "/dashboard/leaderboard")
    order = [row["version_id"] for row in board["rows"]]
    if new_id not in order or old_id not in order:
        raise SystemExit(f"the leaderboard lacks a version: {board}")
    i, j = order.index(new_id), order.index(old_id)
    return board["win_rates"][i][j], board["games"][i][j]


def wilson_interval(rate: float, n: int, z: float = Z95) -> tuple[float, float] | None:
    """The Wilson score interval of a proportion ``rate`` observed over ``n`` trials (95 % by default).

    Ties count half a win, so ``rate`` × ``n`` need not be whole; the interval treats the n held-out pairs
    as independent trials, which slightly overstates the spread when ties are common (a tie is less
    variable than a coin flip). None when there were no trials."""
    if n <= 0:
        return None
    denominator = 1 + z * z / n
    centre = (rate + z * z / (2 * n)) / denominator
    half = z * math.sqrt(rate * (1 - rate) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def round_or_none(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


def verdict_figures(verdicts: dict[str, int]) -> dict[str, Any]:
    judged = sum(verdicts.values())
    return {
        "pairs_judged": judged,
        "verdicts": verdicts,
        "verdict_shares": {k: round(v / max(judged, 1), 4) for k, v in verdicts.items()},
        "tie_share": round(verdicts["tie"] / max(judged, 1), 4),
    }


def run_loop(
    loop: Loop, *, seed: int, method: str, user_params: dict[str, Any], partial: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Phases 1-5 on a running server; returns the figures. ``partial`` receives the training verdicts and
    the phases' times as they come, for the report of a run that fails later."""
    partial = {} if partial is None else partial
    partial["phases_s"] = loop.phases
    profile, tiny, safety = loop.profile, loop.profile.name == "tiny", loop.rule_name in SAFETY_RULES
    with loop.phase("setup"):
        old_id, train_set = loop.policy_v0_and_prompts()
        accepts = loop.kind_fields(method)
        heldout = loop.heldout_set()
    with loop.phase("judge"):
        verdicts = loop.judge(profile.pairs, retire_when_enough=train_set, training=True)
    unsafe_train = loop.unsafe_labels
    partial.update(verdict_figures(verdicts))
    if verdicts["a"] + verdicts["b"] < 2:
        raise SystemExit(
            f"the {loop.rule_name!r} rule tied on {verdicts['tie']} of {sum(verdicts.values())} pairs: "
            "nothing to learn from (the policy's answers all have its trait, or none has)"
        )
    backbone = {"backbone_version_id": old_id} if tiny else {}
    links: dict[str, Any] = {"policy_version_id": old_id, "prompt_set_ids": [train_set], "seed": seed}
    rm_accuracy, classifier = None, None
    if "reward_version_id" in accepts:
        with loop.phase("reward"):
            reward = loop.run_job("reward", {**profile.reward, **backbone, "seed": seed})
        rm_accuracy = reward["result"]["metrics"].get("val_accuracy")
        links["reward_version_id"] = reward["result"]["version_id"]
        print(f"    reward model validation accuracy {rm_accuracy}", flush=True)
    else:
        print(f"--- reward: skipped, a {method!r} job takes no reward version", flush=True)
    if safety:
        with loop.phase("classifier"):
            job = loop.run_job("classifier", {**profile.reward, **backbone, "heads": ["safety"], "seed": seed})
        classifier = {
            "version_id": job["result"]["version_id"],
            "metrics": job["result"].get("metrics", {}),
            "passed_to_policy": "classifier_version_id" in accepts,
        }
        links["classifier_version_id"] = classifier["version_id"]
        print(f"    safety classifier {classifier['metrics']}", flush=True)
        if not classifier["passed_to_policy"]:
            print(f"    a {method!r} job takes no classifier: no safety penalty", flush=True)
    defaults = {k: v for k, v in profile.ppo.items() if k in accepts}
    params = {**defaults, **{k: v for k, v in links.items() if k in accepts}, **user_params}
    with loop.phase(method):
        policy = loop.run_job(method, params)
    new_id = policy["result"]["version_id"]
    kl_final, kl_all, trace = kl_per_token(loop.researcher, policy["id"])
    with loop.phase("evaluate"):
        loop.set_status(heldout, "active")
        promoted = loop.researcher.call("POST", f"/models/{new_id}/promote")
        print(f"    promoted {promoted['promoted']['name']}; {promoted['retired_pairs']} old pairs retired", flush=True)
        loop.judge(profile.eval_pairs)
        rate, battles = win_rate(loop.researcher, new_id, old_id)
    shares = heldout_trait_shares(loop, heldout, {"new": new_id, "old": old_id})
    judged = sum(verdicts.values())
    interval = wilson_interval(rate, battles)
    trait_share = loop.with_trait / loop.answers_seen if loop.rule_name in TRAITS and loop.answers_seen else None
    metrics = policy["result"].get("metrics", {})
    return {
        "rule": loop.rule_name,
        "kind": KINDS[loop.rule_name],
        "seed": seed,
        "method": method,
        **verdict_figures(verdicts),
        "rm_val_accuracy": rm_accuracy,
        "classifier": classifier,
        "unsafe_label_share": round(unsafe_train / max(2 * judged, 1), 4) if safety else None,
        "policy_updates": policy["result"].get("updates"),
        "score_last": metrics.get("score"),
        "mean_kl_per_token": round_or_none(kl_final),
        "mean_kl_per_token_all_updates": round_or_none(kl_all),
        "win_rate": round(rate, 4),
        "win_rate_ci95": None if interval is None else [round(x, 4) for x in interval],
        # The old policy's answers (training pairs) with the preferred trait, and the win rate that leaves
        # within reach of any policy (bench.rules.win_ceiling); None for the rules that compare.
        "old_trait_share": round_or_none(trait_share),
        "win_ceiling": None if trait_share is None else round(win_ceiling(trait_share), 4),
        # The same share among each version's answers to the held-out prompts: how far the policy moved on
        # the trait itself, which the win rate compresses when the ceiling is low.
        "heldout_trait_share": shares,
        "eval_battles": battles,
        "phases_s": loop.phases,
        "policy_params": {k: v for k, v in params.items() if k != "num_threads"},
        "policy_trace": trace,
    }


def heldout_trait_shares(loop: Loop, heldout: int, versions: dict[str, int]) -> dict[str, float | None] | None:
    """Per version (name → id), the share of its stored answers to the held-out prompts that have the rule's
    preferred trait; None for a rule without one. Read from the server's database after the evaluation (the
    judging API is blind to versions by design), read-only."""
    trait = TRAITS.get(loop.rule_name)
    if trait is None or not loop.database_url:
        return None
    from sqlalchemy import create_engine, select

    from app.pool.models import Response
    from app.prompts.models import Prompt

    engine = create_engine(loop.database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                select(Response.policy_version_id, Response.text)
                .join(Prompt, Prompt.id == Response.prompt_id)
                .where(Prompt.prompt_set_id == heldout, Response.policy_version_id.in_(list(versions.values())))
            ).all()
    finally:
        engine.dispose()
    shares: dict[str, float | None] = {}
    for name, version_id in versions.items():
        texts = [text for vid, text in rows if vid == version_id]
        shares[name] = round(sum(map(trait, texts)) / len(texts), 4) if texts else None
    return shares


def tiny_policy(folder: Path) -> Path:
    """A tiny random Llama with the SmolLM2 tokenizer, installed by the bootstrap instead of SmolLM2."""
    from app.training.core.default_models import load_smollm2_tokenizer
    from app.training.core.tiny import tiny_llama

    tokenizer = load_smollm2_tokenizer(Path(tempfile.gettempdir()) / "rlhf-smollm2-tokenizer")
    tiny_llama(tokenizer, hidden_size=32, num_layers=2, seed=0).save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    return folder


def job_param(text: str) -> tuple[str, Any]:
    """``key=value`` → (key, the value parsed as JSON, else the plain string); the job validates it."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def rule_list(text: str) -> list[str]:
    """``all`` → every rule; ``a,b,c`` → those, in that order, each once; ``FILE.py:FUNCTION`` or
    ``MODULE:FUNCTION`` among them → a rule of one's own (:func:`bench.rules.load_rule`)."""
    names = list(RULES) if text.strip() == "all" else [n.strip() for n in text.split(",") if n.strip()]
    names = list(dict.fromkeys(names))  # a file rule named twice is loaded once (a second load would clash)
    try:
        names = [load_rule(n) if ":" in n else n for n in names]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc
    unknown = [n for n in names if n not in RULES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown rule {', '.join(unknown) or text!r}; choose from all, {', '.join(RULES)} (comma-separated)"
        )
    return list(dict.fromkeys(names))


def one_run(
    rule: str, seed: int, data_dir: Path, profile: Profile, args: argparse.Namespace, partial: dict[str, Any]
) -> dict[str, Any]:
    """One rule, one seed: a fresh server on ``data_dir``, the five phases, the figures (``partial``: those
    known so far, should the run fail)."""
    # Gold pairs check annotators; this one is a rule and always right, so they would only take judgements
    # (and evaluation battles) away from the loop being measured.
    env = {
        **profile.server_env,
        "RLHF_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "RLHF_POOL_CROSS_VERSION_SHARE": "1.0",
        "RLHF_GOLD_SHARE": "0",
    }
    if profile.name == "tiny":
        env["RLHF_BOOTSTRAP_MODEL"] = str(tiny_policy(data_dir / "tiny-policy"))
    if args.database_url:
        env["RLHF_DATABASE_URL"] = args.database_url
    user_params = dict(args.param)
    if args.updates:
        user_params["updates"] = args.updates
    print(
        f"=== closed loop: rule {rule!r} ({KINDS[rule]}), seed {seed}, method {args.method!r}, "
        f"{profile.pairs} judgements, data in {data_dir}",
        flush=True,
    )
    started = time.monotonic()
    with running_server(data_dir / "var", extra_env=env, args=("--log-level", "warning")) as server:
        admin = Api(server.url, api_token(server.url, "admin", ADMIN_PASSWORD))
        admin.call("POST", "/users", json={"username": ANNOTATOR[0], "password": ANNOTATOR[1], "role": "annotator"})
        annotator = Api(server.url, api_token(server.url, *ANNOTATOR))
        loop = Loop(
            admin, annotator, rule, RULES[rule], profile, {"server start": round(time.monotonic() - started, 1)}
        )
        loop.database_url = Settings(data_dir=data_dir / "var", database_url=args.database_url).resolved_database_url
        report = run_loop(loop, seed=seed, method=args.method, user_params=user_params, partial=partial)
    report["total_s"] = round(time.monotonic() - started, 1)
    print(
        f"    reward model validation accuracy: {fmt(report['rm_val_accuracy'], '.3f')}; "
        f"win rate ({rule!r}, ties half): {fmt_rate(report)} over {report['eval_battles']} held-out pairs; "
        f"KL/token {fmt(report['mean_kl_per_token'], '.3f')} (last quarter), "
        f"{fmt(report['mean_kl_per_token_all_updates'], '.3f')} (all updates)",
        flush=True,
    )
    if report["heldout_trait_share"]:
        shares = report["heldout_trait_share"]
        print(
            f"    answers with the preferred trait (held-out prompts): old {fmt(shares['old'], '.1%')} → new "
            f"{fmt(shares['new'], '.1%')}; win-rate ceiling {fmt(report['win_ceiling'], '.1%')}",
            flush=True,
        )
    print(
        "    wall time per phase: "
        + ", ".join(f"{k} {v:.0f} s" for k, v in report["phases_s"].items())
        + f"; total {report['total_s'] / 60:.1f} min",
        flush=True,
    )
    return report


def fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def fmt_rate(run: dict[str, Any]) -> str:
    if run.get("win_rate") is None:
        return "-"
    ci = run.get("win_rate_ci95")
    return f"{run['win_rate']:.1%}" + ("" if ci is None else f" [{ci[0]:.1%}, {ci[1]:.1%}]")


def mean_sd(values: list[float]) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation (None with fewer than two values)."""
    if not values:
        return None, None
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else None)


def summarise(rule: str, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One rule's runs and their spread over the seeds."""
    done = [r for r in runs if "error" not in r]

    def mean_of(key: str) -> float | None:
        values = [r[key] for r in done if r.get(key) is not None]
        return round(statistics.fmean(values), 4) if values else None

    mean, sd = mean_sd([r["win_rate"] for r in done])
    return {
        "kind": KINDS[rule],
        "seeds": [r["seed"] for r in runs],
        "failed_seeds": [r["seed"] for r in runs if "error" in r],
        "win_rate_mean": round_or_none(mean),
        "win_rate_sd": round_or_none(sd),
        "tie_share_mean": round_or_none(mean_sd([r["tie_share"] for r in runs if "tie_share" in r])[0]),
        "rm_val_accuracy_mean": mean_of("rm_val_accuracy"),
        "win_ceiling_mean": mean_of("win_ceiling"),
        "mean_kl_per_token_mean": mean_of("mean_kl_per_token"),
        "minutes": round(sum(r.get("total_s", 0) for r in runs) / 60, 1),
        "runs": runs,
    }


TABLE_NOTE = """\
a/b/tie: the rule's verdicts on the training pairs, as shares: the left answer (a), the right (b), or a tie —
  a trait rule ties when both answers have its trait or neither has (shorter and on_topic: equal counts); ties
  train nothing. Sides are shuffled, so a ≈ b. RM acc: the reward model's validation accuracy ('-': no reward job).
win rate: the new policy against the old on held-out pairs under the same rule, ties counted half, with a 95 %
  Wilson score interval over those pairs (evaluation noise only; the spread over seeds shows the training's).
ceiling: the most any policy could win against the old one under a trait rule, 1 − (the old policy's share of
  answers with the preferred trait)/2 — against an answer that has it the best answer only ties ('-': a rule
  that compares). A rule against something the policy rarely does has a ceiling near 50 %.
KL/tok: mean KL per token to the old policy: the saved policy's where the job measures it (online DPO), else
  over the last quarter of training. min: the run's wall time."""


def print_table(runs: list[dict[str, Any]], rules: dict[str, dict[str, Any]]) -> None:
    """The runs as a table, then each rule's mean ± sd over seeds when it ran more than one."""
    print("\n" + TABLE_NOTE)
    header = (
        f"{'rule':<16} {'kind':<8} {'seed':>4}  {'a/b/tie %':<11} {'RM acc':>6}  {'win rate [95 % CI]':<24} "
        f"{'ceiling':>7} {'KL/tok':>6} {'min':>5}"
    )
    print(header + "\n" + "-" * len(header))
    for r in runs:
        shares = (
            "/".join(f"{100 * r['verdict_shares'][k]:.0f}" for k in ("a", "b", "tie")) if "verdict_shares" in r else "-"
        )
        if "error" in r:
            print(
                f"{r['rule']:<16} {r['kind']:<8} {r['seed']:>4}  {shares:<11} failed: "
                f"{r['error'].splitlines()[0][:100]}"
            )
            continue
        print(
            f"{r['rule']:<16} {r['kind']:<8} {r['seed']:>4}  {shares:<11} {fmt(r['rm_val_accuracy'], '.3f'):>6}  "
            f"{fmt_rate(r):<24} {fmt(r.get('win_ceiling'), '.1%'):>7} {fmt(r['mean_kl_per_token'], '.3f'):>6} "
            f"{r['total_s'] / 60:>5.1f}"
        )
    for rule, summary in rules.items():
        if len(summary["seeds"]) > 1 and summary["win_rate_mean"] is not None:
            sd = summary["win_rate_sd"]
            print(
                f"{rule}: win rate {summary['win_rate_mean']:.1%} ± {fmt(None if sd is None else 100 * sd, '.1f')} "
                f"points (mean ± sd over seeds {summary['seeds']}), tie share {summary['tie_share_mean']:.0%}"
            )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--rule",
        type=rule_list,
        default=["shorter"],
        metavar="RULE[,RULE…]|all",
        help=f"the simulated annotator's preference: one of {', '.join(RULES)}, several "
        "comma-separated, or 'all'; FILE.py:FUNCTION or MODULE:FUNCTION runs a rule of your own, a function "
        "(prompt, answer A, answer B) -> 'a', 'b' or 'tie'; each runs on its own fresh server (default shorter)",
    )
    ap.add_argument("--seed", type=int, default=0, help="the (first) seed of the reward, classifier and policy jobs")
    ap.add_argument(
        "--seeds",
        type=int,
        default=1,
        metavar="N",
        help="run each rule N times, seeds --seed … --seed+N-1, and report the win rate's mean ± sd",
    )
    ap.add_argument(
        "--method",
        choices=POLICY_METHODS,
        default=DEFAULT_POLICY_METHOD,
        help=f"the policy job's kind (default {DEFAULT_POLICY_METHOD}, the dashboard's 'Improve the policy'); "
        "a kind without reward_version_id skips the reward job",
    )
    ap.add_argument("--pairs", type=int, help="pool pairs judged before training (default 400; tiny 40)")
    ap.add_argument("--eval-pairs", type=int, help="new-vs-old pairs judged on held-out prompts (default 64; tiny 16)")
    ap.add_argument("--updates", type=int, help="the policy job's updates (default: the job's, 20 for ppo)")
    ap.add_argument(
        "--param",
        "--ppo",
        dest="param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        type=job_param,
        help="a policy job parameter, the value as JSON (repeatable), e.g. --param kl_coef=0.1; "
        "sent as given, over the profile's defaults (--ppo is the old name)",
    )
    ap.add_argument(
        "--profile",
        choices=sorted(PROFILES),
        default="real",
        help="real: SmolLM2 and MiniLM (≈ 30 min a run); tiny: a tiny random policy, the plumbing in minutes",
    )
    ap.add_argument("--tiny", action="store_const", const="tiny", dest="profile", help="the same as --profile tiny")
    ap.add_argument("--database-url", help="an empty PostgreSQL database to use instead of SQLite (one run only)")
    ap.add_argument(
        "--data-dir",
        type=Path,
        help="default: a new temporary folder per run, removed after the run "
        "when there are several (a failed run's is kept); given: kept, one subfolder per run if several",
    )
    args = ap.parse_args()
    if args.seeds < 1:
        ap.error("--seeds must be at least 1")
    runs_wanted = [(rule, args.seed + k) for rule in args.rule for k in range(args.seeds)]
    if args.database_url and len(runs_wanted) > 1:
        ap.error("--database-url takes one run (one rule, one seed): every run needs an empty database")

    started, runs = time.monotonic(), []
    for rule, seed in runs_wanted:
        profile = PROFILES[args.profile]()
        profile.pairs = args.pairs or profile.pairs
        profile.eval_pairs = args.eval_pairs or profile.eval_pairs
        temporary = args.data_dir is None
        if temporary:
            data_dir = Path(tempfile.mkdtemp(prefix=f"rlhf-closed-loop-{rule}-s{seed}-"))
        else:
            data_dir = args.data_dir if len(runs_wanted) == 1 else args.data_dir / f"{rule}-seed{seed}"
        partial: dict[str, Any] = {}
        try:
            runs.append(one_run(rule, seed, data_dir, profile, args, partial))
        except (SystemExit, Exception) as exc:  # one failed run must not lose the others' figures
            detail = str(exc) if isinstance(exc, SystemExit) else traceback.format_exc()
            print(
                f"!!! rule {rule!r} seed {seed} failed (data kept in {data_dir}):\n{detail}",
                file=sys.stderr,
                flush=True,
            )
            runs.append(
                {
                    "rule": rule,
                    "kind": KINDS[rule],
                    "seed": seed,
                    "method": args.method,
                    **partial,
                    "error": detail[-3000:],
                    "data_dir": str(data_dir),
                }
            )
            continue
        if temporary and len(runs_wanted) > 1:
            shutil.rmtree(data_dir, ignore_errors=True)

    rules = {rule: summarise(rule, [r for r in runs if r["rule"] == rule]) for rule in args.rule}
    print_table(runs, rules)
    means = [s["win_rate_mean"] for s in rules.values() if s["win_rate_mean"] is not None]
    result: dict[str, Any] = {
        "rules": rules,
        "mean_win_rate": round(statistics.fmean(means), 4) if means else None,
        "method": args.method,
        "profile": args.profile,
        "seeds": [args.seed + k for k in range(args.seeds)],
        "pairs": args.pairs or PROFILES[args.profile]().pairs,
        "eval_pairs": args.eval_pairs or PROFILES[args.profile]().eval_pairs,
        "interval": "95 % Wilson score interval of the win rate over the held-out pairs, ties counted half",
        "ties": "a rule ties when both answers have its trait or neither has; ties train nothing, count half in eval",
        "failed": [{"rule": r["rule"], "seed": r["seed"]} for r in runs if "error" in r],
        "total_s": round(time.monotonic() - started, 1),
    }
    if len(runs) == 1 and "error" not in runs[0]:
        result = {**runs[0], **result}  # one run: its figures at the top level too, as this bench always printed them
    print(
        f"mean win rate over the rules: {fmt(result['mean_win_rate'], '.1%')}; total {result['total_s'] / 60:.1f} min"
    )
    print(json.dumps(result))
    if result["failed"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
