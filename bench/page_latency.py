"""Page latency while a training job runs: the pages people use must not stall behind the trainer.

Starts ``rlhf serve`` on a fresh data folder (the first start installs the default policy; the pool is
switched off), seeds ``--pairs`` judged pairs, and times every page below ``--rounds`` times as a logged-in
admin: once with the machine idle, then while a ``reward`` job trains the default backbone on those pairs
in the worker (the web process itself loads no model: issue 17). Each figure is the wall time of one
request over loopback, which is the server's time plus well under a millisecond. Prints the median and the
95th percentile per page in both states; the last line is one JSON object.

    .venv/bin/python bench/page_latency.py [--rounds 20] [--pairs 400]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.chat_latency import CSRF
from bench.closed_loop import ADMIN_PASSWORD, Api, api_token
from tests.rewards.conftest import seed_preferences
from tests.seed import server_session
from tests.server import running_server

PAGES = [
    "/",
    "/dashboard",
    "/dashboard/models",
    "/dashboard/jobs",
    "/dashboard/jobs/new/reward",
    "/annotate",  # redirects to the next pair's page: both requests are timed
    "/api/v1/annotation/progress",
]


def wait_for_policy(admin: Api) -> None:
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        if any(v["status"] == "promoted" for v in admin.call("GET", "/models", params={"kind": "policy"})):
            return
        time.sleep(2)
    raise SystemExit("the default policy was not installed within 15 min")


def browser(base: str) -> httpx.Client:
    web = httpx.Client(base_url=base, timeout=120, follow_redirects=True)
    token = CSRF.search(web.get("/login").text).group(1)
    form = {"username": "admin", "password": ADMIN_PASSWORD, "csrf_token": token}
    if web.post("/login", data=form, follow_redirects=False).status_code != 303:
        raise SystemExit("login failed")
    return web


def time_pages(web: httpx.Client, rounds: int, still: Any = None) -> dict[str, list[float]]:
    """Seconds per request, page by page, interleaved round by round; ``still()`` False stops early."""
    times: dict[str, list[float]] = {page: [] for page in PAGES}
    for _ in range(rounds):
        if still is not None and not still():
            break
        for page in PAGES:
            start = time.perf_counter()
            answer = web.get(page)
            elapsed = time.perf_counter() - start
            if answer.status_code != 200:
                raise SystemExit(f"GET {page} answered {answer.status_code}")
            times[page].append(elapsed)
    return times


def summary(times: dict[str, list[float]]) -> dict[str, dict[str, float]]:
    out = {}
    for page, values in times.items():
        if values:
            ordered = sorted(values)
            p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
            out[page] = {"median_ms": round(1000 * statistics.median(values), 1), "p95_ms": round(1000 * p95, 1)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--pairs", type=int, default=400)
    args = ap.parse_args()
    load = os.getloadavg()[0]
    env = {
        "RLHF_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "RLHF_POOL_TARGET": "0",
        "RLHF_GOLD_SHARE": "0",
        "HF_HUB_OFFLINE": "1",
    }
    print(f"page latency, {len(PAGES)} pages x {args.rounds} rounds, idle then training; load {load:.2f}", flush=True)
    with tempfile.TemporaryDirectory(prefix="rlhf-page-bench-") as folder:
        data_dir = Path(folder) / "var"
        with running_server(data_dir, extra_env=env, args=("--log-level", "warning")) as server:
            from app.config import Settings

            admin = Api(server.url, api_token(server.url, "admin", ADMIN_PASSWORD))
            wait_for_policy(admin)
            with server_session(Settings(data_dir=data_dir)) as db:
                seed_preferences(db, args.pairs)
                db.commit()
            web = browser(server.url)
            time_pages(web, 2)  # warm the templates and the connection
            idle = time_pages(web, args.rounds)
            job = admin.call("POST", "/jobs", json={"kind": "reward", "params": {"epochs": 20, "name": "rm-bench"}})
            deadline = time.monotonic() + 600
            while admin.call("GET", f"/jobs/{job['id']}")["progress"] <= 0:  # the model is loaded and training
                if time.monotonic() > deadline:
                    raise SystemExit("the reward job did not start training within 10 min")
                time.sleep(1)

            def running() -> bool:
                return admin.call("GET", f"/jobs/{job['id']}")["status"] == "running"

            busy = time_pages(web, args.rounds, still=running)
            still_running = running()
            admin.call("POST", f"/jobs/{job['id']}/cancel", ok=(200, 202, 409))
    idle_s, busy_s = summary(idle), summary(busy)
    for page in PAGES:
        i, b = idle_s[page], busy_s.get(page, {})
        print(
            f"  {page:32s} idle median {i['median_ms']:6.1f} ms p95 {i['p95_ms']:6.1f} · training "
            f"median {b.get('median_ms', float('nan')):6.1f} ms p95 {b.get('p95_ms', float('nan')):6.1f}"
        )
    worst = max(v["p95_ms"] for v in busy_s.values())
    result = {
        "rounds": args.rounds,
        "rounds_while_training": min(len(v) for v in busy.values()),
        "job_still_running_at_end": still_running,
        "idle": idle_s,
        "training": busy_s,
        "worst_p95_training_ms": worst,
        "ratio": round(worst / max(v["p95_ms"] for v in idle_s.values()), 2),
        "load_at_start": round(load, 2),
    }
    print(f"worst 95th percentile while training: {worst:.1f} ms")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
