"""Chat latency with the default policy: first words on screen, streamed, against the whole turn.

Starts ``rlhf serve`` on a fresh data folder (the first start installs SmolLM2-135M-Instruct; the pool is
switched off so nothing else uses the cores), logs in as an annotator and plays ``--turns`` chat turns
through the page's own endpoints:

- streamed (``POST /chat/stream``, what chat.js uses): the time to the first ``reply`` event with text
  (first words on screen) and to ``done`` (both replies stored, the judging page ready);
- the peer, the plain form (``POST /chat``, the page without JavaScript and the app before streaming):
  nothing shows until the whole turn is done, so its first words arrive with its last.

Each turn is a new conversation with a different message; the first turn of each mode also loads the model
into the web process's warm generator and is reported apart. Prints the medians and their ratio; the last
line is one JSON object.

    .venv/bin/python bench/chat_latency.py [--turns 10] [--max-new-tokens 96]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.closed_loop import ADMIN_PASSWORD, Api, api_token
from tests.server import running_server

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
USER = ("chat-bench", "chat-bench-password-1")
MESSAGES = [
    "What should I pack for a weekend hiking trip?",
    "How do I keep basil fresh for longer?",
    "Explain what a leap year is.",
    "Give me a tip for falling asleep faster.",
    "What is a good way to start learning to cook?",
    "Why is the sky blue?",
    "How can I make my houseplants grow better?",
    "What is the difference between weather and climate?",
    "Suggest a name for a friendly robot.",
    "How do I politely decline an invitation?",
    "What does a compass do?",
    "How long should I boil an egg?",
]


def wait_for_policy(base: str) -> None:
    """The first start installs the default policy in a job: wait until one is promoted."""
    admin = Api(base, api_token(base, "admin", ADMIN_PASSWORD))
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        if any(v["status"] == "promoted" for v in admin.call("GET", "/models", params={"kind": "policy"})):
            admin.call("POST", "/users", json={"username": USER[0], "password": USER[1], "role": "annotator"})
            return
        time.sleep(2)
    raise SystemExit("the default policy was not installed within 15 min")


def logged_in(base: str) -> httpx.Client:
    web = httpx.Client(base_url=base, timeout=600)
    token = CSRF.search(web.get("/login").text).group(1)
    done = web.post("/login", data={"username": USER[0], "password": USER[1], "csrf_token": token})
    if done.status_code != 303:
        raise SystemExit(f"login failed: {done.status_code}")
    return web


def streamed_turn(web: httpx.Client, message: str) -> tuple[float, float]:
    """(seconds to the first words, seconds to the stored turn) over ``POST /chat/stream``."""
    token = CSRF.search(web.get("/chat").text).group(1)
    start, first = time.perf_counter(), None
    with web.stream("POST", "/chat/stream", data={"message": message, "csrf_token": token}) as answer:
        answer.raise_for_status()
        event = ""
        for line in answer.iter_lines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                data = json.loads(line[6:])
                if event == "reply" and data["text"].strip() and first is None:
                    first = time.perf_counter() - start
                elif event == "error":
                    raise SystemExit(f"the turn failed: {data['message']}")
                elif event == "done":
                    total = time.perf_counter() - start
                    return (first if first is not None else total), total
    raise SystemExit("the stream ended without a stored turn")


def form_turn(web: httpx.Client, message: str) -> float:
    """Seconds until the plain form's redirect to the judging page: when its first words can show."""
    token = CSRF.search(web.get("/chat").text).group(1)
    start = time.perf_counter()
    done = web.post("/chat", data={"message": message, "csrf_token": token})
    if done.status_code != 303 or "/chat/turns/" not in done.headers.get("location", ""):
        raise SystemExit(f"the form turn failed: {done.status_code} {done.text[:300]}")
    return time.perf_counter() - start


def median(values: list[float]) -> float:
    return round(statistics.median(values), 3)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--turns", type=int, default=10)
    ap.add_argument("--max-new-tokens", type=int, default=96, help="the chat reply budget (RLHF_CHAT_MAX_NEW_TOKENS)")
    args = ap.parse_args()
    load = os.getloadavg()[0]
    env = {
        "RLHF_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "RLHF_POOL_TARGET": "0",  # no pool generation competing for the cores
        "RLHF_GOLD_SHARE": "0",
        "RLHF_CHAT_MAX_NEW_TOKENS": str(args.max_new_tokens),
        "HF_HUB_OFFLINE": "1",
    }
    print(f"chat latency, default policy, {args.turns} turns per mode, load {load:.2f}", flush=True)
    with (
        tempfile.TemporaryDirectory(prefix="rlhf-chat-bench-") as folder,
        running_server(Path(folder) / "var", extra_env=env, args=("--log-level", "warning")) as server,
    ):
        wait_for_policy(server.url)
        web = logged_in(server.url)
        warm_first, warm_total = streamed_turn(web, "Hello!")  # loads the model into the warm process
        messages = (MESSAGES * (2 * args.turns // len(MESSAGES) + 1))[: 2 * args.turns]
        firsts, totals, forms = [], [], []
        for i in range(args.turns):  # alternate, so both modes see the same machine load
            first, total = streamed_turn(web, messages[2 * i])
            firsts.append(first)
            totals.append(total)
            forms.append(form_turn(web, messages[2 * i + 1]))
            print(f"  turn {i + 1}: streamed first words {first:.2f} s, stored {total:.2f} s; form {forms[-1]:.2f} s")
    result: dict[str, Any] = {
        "turns": args.turns,
        "max_new_tokens": args.max_new_tokens,
        "streamed_first_words_s": median(firsts),
        "streamed_turn_s": median(totals),
        "form_turn_s": median(forms),
        "ratio": round(statistics.median(forms) / statistics.median(firsts), 2),
        "first_turn_with_model_load_s": [round(warm_first, 2), round(warm_total, 2)],
        "load_at_start": round(load, 2),
    }
    print(
        f"median first words: streamed {result['streamed_first_words_s']:.2f} s vs the form's "
        f"{result['form_turn_s']:.2f} s ({result['ratio']:.1f}x sooner); whole turn streamed "
        f"{result['streamed_turn_s']:.2f} s"
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
