"""The whole RLHF loop through the real HTTP API, with a simulated annotator whose taste is a simple rule.

Starts ``rlhf serve`` (with its embedded worker) on a fresh data folder, which installs the default
policy (SmolLM2-135M-Instruct) and the starter prompts and starts filling the pair pool. Then, through
``/api/v1`` only:

1. judge N pool pairs (``/annotation/next`` + ``/annotation/judgements``) by the rule;
2. start a ``reward`` job (Bradley–Terry on those judgements) and wait for it;
3. start a ``ppo`` job against that reward version on the same (training) prompts and wait for it;
4. switch the pool to a held-out prompt set and promote the new policy: the pool retires the old
   policy's pairs and generates cross-version pairs, new vs old;
5. judge those by the same rule and read the human (here: simulated) verdict off the leaderboard API.

It prints the reward model's validation accuracy, the new policy's win rate against the old under the
rule (ties count half), the mean KL per token to the old policy during the last quarter of PPO (the
trained policy's), and the wall time of each phase. The last line is one JSON object.

    nice -n 10 .venv/bin/python bench/closed_loop.py                    # the acceptance run (≈ 20-30 min)
    .venv/bin/python bench/closed_loop.py --tiny                        # a smoke run on a tiny random policy
    .venv/bin/python bench/closed_loop.py --rule question --pairs 600   # prefers answers ending with '?'
    .venv/bin/python bench/closed_loop.py --database-url postgresql://postgres@127.0.0.1:5432/rlhf_loop
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.server import running_server  # noqa: E402 - the same way the end-to-end tests start the server

HELDOUT = Path(__file__).with_name("closed_loop_heldout.jsonl")
ADMIN_PASSWORD = "closed-loop-admin-password"
ANNOTATOR = ("sim-annotator", "closed-loop-annotator-password")
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
LABELS = {side: {"quality": "good", "safety": "safe"} for side in "AB"}
# The pool samples as PPO's rollouts do (temperature 0.7, no nucleus cut): the judged pairs, the training
# samples and the evaluation pairs come from one distribution, and no sort over the vocabulary per token.
SAMPLING = {"RLHF_POOL_TEMPERATURE": "0.7", "RLHF_POOL_TOP_P": "1.0"}


# --- the simulated annotator's taste: "A", "B" or "tie" for the two texts as shown
def prefers_shorter(a: str, b: str) -> str:
    """The shorter answer wins (characters); equal lengths tie."""
    return "tie" if len(a) == len(b) else ("A" if len(a) < len(b) else "B")


def prefers_question(a: str, b: str) -> str:
    """The answer that ends with a question wins; both or neither tie."""
    qa, qb = a.rstrip().endswith("?"), b.rstrip().endswith("?")
    return "tie" if qa == qb else ("A" if qa else "B")


RULES: dict[str, Callable[[str, str], str]] = {"shorter": prefers_shorter, "question": prefers_question}


@dataclass
class Profile:
    """What one run does: how many judgements, the server's pool settings, the two jobs' parameters."""

    pairs: int
    eval_pairs: int
    server_env: dict[str, str]
    reward: dict[str, Any]
    ppo: dict[str, Any]
    timeout_s: float = 3600.0


def real_profile() -> Profile:
    """The default SmolLM2 policy, a MiniLM reward model and the ppo job's defaults (LoRA r 16, 20 updates of
    8 prompts, 48 new tokens, β 0.07); sized to finish within 30 min on 2 cores."""
    pool = {"RLHF_POOL_TARGET": "64", "RLHF_POOL_MAX_PAIRS_PER_JOB": "64", "RLHF_POOL_BATCH_PROMPTS": "16",
            "RLHF_POOL_MAX_NEW_TOKENS": "48", **SAMPLING}
    cores = {"num_threads": os.cpu_count() or 1}  # each job runs alone, the generator idle: every core
    reward = {"epochs": 2, "batch_size": 16, "learning_rate": 5e-5, "max_length": 128, "validation_fraction": 0.15,
              **cores}
    return Profile(pairs=400, eval_pairs=64, server_env=pool, reward=reward, ppo=cores)  # else the ppo job's defaults


def tiny_profile() -> Profile:
    """A tiny random Llama: every phase runs, in a few minutes; the figures mean nothing."""
    pool = {"RLHF_POOL_TARGET": "16", "RLHF_POOL_MAX_PAIRS_PER_JOB": "16", "RLHF_POOL_BATCH_PROMPTS": "8",
            "RLHF_POOL_MAX_NEW_TOKENS": "12", **SAMPLING}
    reward = {"epochs": 1, "batch_size": 8, "learning_rate": 1e-3, "max_length": 128, "validation_fraction": 0.25}
    ppo = {"updates": 3, "batch_size": 4, "num_minibatches": 1, "ppo_epochs": 1, "response_length": 12,
           "learning_rate": 1e-3, "checkpoint_every": 0}
    return Profile(pairs=40, eval_pairs=16, server_env=pool, reward=reward, ppo=ppo, timeout_s=900.0)


class Api:
    """A Bearer-token client of ``/api/v1`` that stops the run on any unexpected answer."""

    def __init__(self, base: str, token: str) -> None:
        self.http = httpx.Client(base_url=base + "/api/v1", headers={"Authorization": f"Bearer {token}"}, timeout=120)

    def call(self, method: str, path: str, *, ok: tuple[int, ...] = (200, 201), **kwargs: Any) -> Any:  # noqa: ANN401
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
    rule: Callable[[str, str], str]
    profile: Profile
    phases: dict[str, float] = field(default_factory=dict)

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
            promoted = [v for v in self.researcher.call("GET", "/models", params={"kind": "policy"})
                        if v["status"] == "promoted"]
            sets = [s for s in self.researcher.call("GET", "/prompt-sets") if s["status"] == "active"]
            if promoted and sets:
                return promoted[0]["id"], sets[0]["id"]
            time.sleep(2)
        raise SystemExit("the first-start bootstrap did not finish")

    def judge(self, count: int, *, retire_when_enough: int | None = None) -> dict[str, int]:
        """Judge ``count`` pairs from the pool by the rule, waiting for the generator when it is empty.

        With ``retire_when_enough`` (a prompt set), that set is retired as soon as the pool holds the pairs
        still to judge, so the generator stops after its current batch instead of refilling the pool."""
        verdicts = {"A": 0, "B": 0, "tie": 0}
        deadline = time.monotonic() + self.profile.timeout_s
        while sum(verdicts.values()) < count:
            judged = sum(verdicts.values())
            if retire_when_enough is not None and judged % 8 == 0 and \
                    judged + self.researcher.call("GET", "/pool")["pending_total"] >= count:
                self.set_status(retire_when_enough, "retired")
                retire_when_enough = None
            shown = self.annotator.http.get("/annotation/next")
            if shown.status_code == 204:
                if time.monotonic() > deadline:
                    raise SystemExit(f"the pool stayed empty after {sum(verdicts.values())} judgements")
                time.sleep(1)
                continue
            pair = shown.json()
            choice = self.rule(pair["responses"]["A"], pair["responses"]["B"])
            body = {"assignment_id": pair["assignment_id"], "choice": choice, "labels": LABELS}
            self.annotator.call("POST", "/annotation/judgements", json=body if choice == "tie" else {**body, "strength": 2})
            verdicts[choice] += 1
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
        created = self.researcher.call("POST", "/prompt-sets", json={"name": "closed-loop-heldout", "status": "retired"})
        with HELDOUT.open("rb") as stream:
            self.researcher.call("POST", f"/prompt-sets/{created['id']}/import",
                                 files={"file": (HELDOUT.name, stream, "application/jsonl")})
        return created["id"]


def kl_per_token(api: Api, job_id: int) -> tuple[float, float, list[dict[str, float]]]:
    """Σ KL / Σ tokens over the last quarter of the updates (the trained policy) and over all of them,
    and per update: KL per response, response length, mean reward-model score and β (how it got there)."""
    def series(name: str) -> dict[int, float]:
        return {m["step"]: m["value"] for m in api.call("GET", f"/jobs/{job_id}/metrics", params={"name": name})}

    kl, length, score, beta = series("kl"), series("response_length"), series("score"), series("beta")
    steps = sorted(kl)
    last = steps[-max(1, len(steps) // 4):]
    trace = [{"update": s, "kl": round(kl[s], 3), "length": round(length[s], 1), "score": round(score.get(s, 0), 3),
              "beta": round(beta.get(s, 0), 4)} for s in steps]
    return (sum(kl[s] for s in last) / max(sum(length[s] for s in last), 1e-9),
            sum(kl.values()) / max(sum(length.values()), 1e-9), trace)


def win_rate(api: Api, new_id: int, old_id: int) -> tuple[float, int]:
    """The new version's observed win rate against the old one (ties half) and the battles, per the leaderboard."""
    board = api.call("GET", "/dashboard/leaderboard")
    order = [row["version_id"] for row in board["rows"]]
    if new_id not in order or old_id not in order:
        raise SystemExit(f"the leaderboard lacks a version: {board}")
    return board["win_rates"][order.index(new_id)][order.index(old_id)], board["games"][order.index(new_id)][order.index(old_id)]


def run_loop(loop: Loop, args: argparse.Namespace) -> dict[str, Any]:
    """Phases 1-5 on a running server; returns the figures."""
    profile = loop.profile
    with loop.phase("setup"):
        old_id, train_set = loop.policy_v0_and_prompts()
        heldout = loop.heldout_set()
    with loop.phase("judge"):
        verdicts = loop.judge(profile.pairs, retire_when_enough=train_set)
    with loop.phase("reward"):
        backbone = {"backbone_version_id": old_id} if args.tiny else {}
        reward = loop.run_job("reward", {**profile.reward, **backbone, "seed": args.seed})
    rm_accuracy = reward["result"]["metrics"].get("val_accuracy")
    print(f"    reward model validation accuracy {rm_accuracy}", flush=True)
    with loop.phase("ppo"):
        ppo = loop.run_job("ppo", {**profile.ppo, "reward_version_id": reward["result"]["version_id"],
                                   "prompt_set_ids": [train_set], "policy_version_id": old_id, "seed": args.seed})
    new_id = ppo["result"]["version_id"]
    kl_final, kl_all, trace = kl_per_token(loop.researcher, ppo["id"])
    with loop.phase("evaluate"):
        loop.set_status(heldout, "active")
        promoted = loop.researcher.call("POST", f"/models/{new_id}/promote")
        print(f"    promoted {promoted['promoted']['name']}; {promoted['retired_pairs']} old pairs retired", flush=True)
        loop.judge(profile.eval_pairs)
        rate, battles = win_rate(loop.researcher, new_id, old_id)
    return {"rule": args.rule, "pairs_judged": profile.pairs, "verdicts": verdicts, "rm_val_accuracy": rm_accuracy,
            "ppo_updates": ppo["result"]["updates"], "score_last": ppo["result"]["metrics"].get("score"),
            "mean_kl_per_token": round(kl_final, 4), "mean_kl_per_token_all_updates": round(kl_all, 4),
            "win_rate": round(rate, 4), "eval_battles": battles, "phases_s": loop.phases,
            "ppo_params": {k: v for k, v in profile.ppo.items() if k != "num_threads"}, "ppo_trace": trace}


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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rule", choices=sorted(RULES), default="shorter", help="the simulated annotator's preference")
    ap.add_argument("--pairs", type=int, help="pool pairs judged before training (default 400; --tiny 40)")
    ap.add_argument("--eval-pairs", type=int, help="new-vs-old pairs judged on held-out prompts (default 64)")
    ap.add_argument("--updates", type=int, help="PPO updates (default: the ppo job's, 20)")
    ap.add_argument("--ppo", action="append", default=[], metavar="KEY=VALUE", type=job_param,
                    help="a ppo job parameter, the value as JSON (repeatable), e.g. --ppo kl_coef=0.1")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tiny", action="store_true", help="a tiny random policy: checks the plumbing in minutes")
    ap.add_argument("--database-url", help="an empty PostgreSQL database to use instead of SQLite")
    ap.add_argument("--data-dir", type=Path, help="default: a new temporary folder")
    args = ap.parse_args()

    profile = tiny_profile() if args.tiny else real_profile()
    profile.pairs = args.pairs or profile.pairs
    profile.eval_pairs = args.eval_pairs or profile.eval_pairs
    if args.updates:
        profile.ppo["updates"] = args.updates
    profile.ppo.update(args.ppo)
    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="rlhf-closed-loop-"))
    env = {**profile.server_env, "RLHF_ADMIN_PASSWORD": ADMIN_PASSWORD, "RLHF_POOL_CROSS_VERSION_SHARE": "1.0"}
    if args.tiny:
        env["RLHF_BOOTSTRAP_MODEL"] = str(tiny_policy(data_dir / "tiny-policy"))
    if args.database_url:
        env["RLHF_DATABASE_URL"] = args.database_url
    print(f"closed loop: rule {args.rule!r}, {profile.pairs} judgements, data in {data_dir}", flush=True)
    started = time.monotonic()
    with running_server(data_dir / "var", extra_env=env, args=("--log-level", "warning")) as server:
        admin = Api(server.url, api_token(server.url, "admin", ADMIN_PASSWORD))
        admin.call("POST", "/users", json={"username": ANNOTATOR[0], "password": ANNOTATOR[1], "role": "annotator"})
        annotator = Api(server.url, api_token(server.url, *ANNOTATOR))
        loop = Loop(admin, annotator, RULES[args.rule], profile, {"server start": round(time.monotonic() - started, 1)})
        report = run_loop(loop, args)
    report["total_s"] = round(time.monotonic() - started, 1)
    print(f"reward model validation accuracy: {report['rm_val_accuracy']:.3f}")
    print(f"win rate of the new policy against the old ({args.rule!r}, ties half): {report['win_rate']:.1%} "
          f"over {report['eval_battles']} held-out pairs")
    print(f"mean KL per token to the old policy: {report['mean_kl_per_token']:.3f} nats (last quarter of PPO), "
          f"{report['mean_kl_per_token_all_updates']:.3f} over all updates")
    print("wall time per phase: " + ", ".join(f"{k} {v:.0f} s" for k, v in report["phases_s"].items())
          + f"; total {report['total_s'] / 60:.1f} min")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
