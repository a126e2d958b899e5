"""Acceptance: after ``rlhf serve`` on an empty data folder the pool fills by itself, and the admin
sees the pairs on the pool page. The bootstrap model is a tiny policy folder (the real SmolLM2
variant of this flow is ``tests/registry/test_bootstrap_real.py``)."""

from __future__ import annotations

import time

import httpx

from tests.helpers import CSRF_RE
from tests.server import running_server


def _login(client: httpx.Client, password: str) -> None:
    page = client.get("/login")
    token = CSRF_RE.search(page.text).group(1)
    answer = client.post("/login", data={"username": "admin", "password": password, "csrf_token": token})
    assert answer.status_code == 303, answer.text


def test_serve_bootstraps_and_the_pool_fills_without_anyone_acting(tmp_path, tiny_policies):
    env = {
        "RLHF_BOOTSTRAP_MODEL": str(tiny_policies[0]), "RLHF_POOL_TARGET": "6", "RLHF_POOL_BATCH_PROMPTS": "4",
        "RLHF_POOL_MAX_NEW_TOKENS": "8", "RLHF_GENERATION_THREADS": "1", "RLHF_ADMIN_PASSWORD": "first-start-password",
    }  # fmt: skip
    with running_server(tmp_path / "var", extra_env=env, args=("--log-level", "warning")) as server:
        assert any("First start: the worker installs the default policy" in line for line in server.output)
        with httpx.Client(base_url=server.url, follow_redirects=False, timeout=30) as client:
            _login(client, "first-start-password")
            deadline, page = time.monotonic() + 300, ""
            while time.monotonic() < deadline:
                page = client.get("/pool").text
                if "<strong>6</strong> pending of a target of 6" in page:
                    break
                time.sleep(1)
            assert "<strong>6</strong> pending of a target of 6" in page, "".join(server.output[-40:])
            assert "policy-v0" in page and "6 pending pair(s)" in page
            models = client.get("/models").text
            assert "policy-v0" in models and "promoted" in models
