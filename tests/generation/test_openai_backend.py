"""The OpenAI-compatible backend against a REAL HTTP server started in the test.

``llama-cpp-python`` would give a real model server, but pip offers it only as a 75 MB source
distribution that compiles llama.cpp (many minutes on two cores), so these tests run
``tests/generation/chat_server.py``: a small ``http.server`` on 127.0.0.1 and a free port that
speaks the chat-completions protocol over real sockets and can be scripted to answer slowly
(timeouts), with 5xx/429/4xx, by dropping the connection, or with malformed bodies.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from app.generation import (
    BackendUnavailable,
    Generation,
    GenerationBackend,
    MalformedReply,
    OpenAIBackend,
    RequestRejected,
    SamplingParams,
    ServingRefused,
    WrongModel,
)
from tests.generation.chat_server import ChatServer, running_chat_server

PROMPTS = [
    [{"role": "user", "content": "alpha"}],
    [{"role": "system", "content": "s"}, {"role": "user", "content": "beta"}],
]
PARAMS = SamplingParams(temperature=0.7, top_p=0.9, max_new_tokens=16, seed=7, n=2)


@pytest.fixture
def server() -> Iterator[ChatServer]:
    with running_chat_server() as running:
        yield running


@pytest.fixture
def backend(server: ChatServer) -> Iterator[OpenAIBackend]:
    with OpenAIBackend(
        f"{server.url}/v1",
        "tiny-chat",
        api_key="sk-test",
        timeout_s=0.5,
        connect_timeout_s=0.5,
        max_retries=2,
        backoff_s=0.01,
        max_concurrency=4,
    ) as client:
        yield client


def test_is_a_generation_backend(backend: OpenAIBackend) -> None:
    assert isinstance(backend, GenerationBackend)


def test_generates_n_per_prompt_in_order_with_per_sample_seeds(backend: OpenAIBackend, server: ChatServer) -> None:
    out = backend.generate(PROMPTS, PARAMS)

    assert [g.text for g in out] == [
        "echo alpha seed=7 temperature=0.7",
        "echo alpha seed=8 temperature=0.7",
        "echo beta seed=7 temperature=0.7",
        "echo beta seed=8 temperature=0.7",
    ]
    assert all(g.finish_reason == "stop" and g.token_count == 4 for g in out)
    sent = server.requests[0]
    assert sent["path"] == "/v1/chat/completions"
    assert sent["headers"]["Authorization"] == "Bearer sk-test"
    assert {k: sent["body"][k] for k in ("model", "max_tokens", "top_p", "n", "stream")} == {
        "model": "tiny-chat",
        "max_tokens": 16,
        "top_p": 0.9,
        "n": 1,
        "stream": False,
    }


def test_length_limit_reports_length(backend: OpenAIBackend) -> None:
    (out,) = backend.generate(PROMPTS[:1], SamplingParams(temperature=0, max_new_tokens=2))

    assert (out.text, out.token_count, out.finish_reason) == ("echo alpha", 2, "length")


def test_no_seed_sends_none(backend: OpenAIBackend, server: ChatServer) -> None:
    backend.generate(PROMPTS[:1], SamplingParams(seed=None))

    assert "seed" not in server.requests[0]["body"]


@pytest.mark.parametrize("failures", [["500"], ["503", "502"], ["429"], ["slow"], ["drop"], ["drop", "500"]])
def test_transient_failures_are_retried(backend: OpenAIBackend, server: ChatServer, failures: list[str]) -> None:
    server.script.extend(failures)

    (out,) = backend.generate(PROMPTS[:1], SamplingParams(seed=1))

    assert out.text == "echo alpha seed=1 temperature=1.0"
    assert len(server.requests) == len(failures) + 1


def test_gives_up_after_the_last_retry(backend: OpenAIBackend, server: ChatServer) -> None:
    server.script.extend(["500", "500", "503"])

    with pytest.raises(BackendUnavailable, match="failed 3 times; last: HTTP 503"):
        backend.generate(PROMPTS[:1], SamplingParams())
    assert len(server.requests) == 3


def test_timeouts_exhaust_retries(backend: OpenAIBackend, server: ChatServer) -> None:
    server.script.extend(["slow"] * 3)

    with pytest.raises(BackendUnavailable, match="ReadTimeout"):
        backend.generate(PROMPTS[:1], SamplingParams())


@pytest.mark.parametrize("status", ["400", "401", "404"])
def test_client_errors_are_not_retried(backend: OpenAIBackend, server: ChatServer, status: str) -> None:
    server.script.append(status)

    with pytest.raises(RequestRejected, match=f"HTTP {status}: .*scripted {status}") as err:
        backend.generate(PROMPTS[:1], SamplingParams())
    assert err.value.status_code == int(status)
    assert len(server.requests) == 1


@pytest.mark.parametrize(
    ("action", "message"),
    [
        ("not-json", "not JSON: <html>upstream proxy error"),
        ("no-choices", "lacks"),
        ("null-content", "content is NoneType"),
        ("no-usage", "lacks 'usage'"),
        ("bad-finish", "unsupported finish_reason 42"),
    ],
)
def test_malformed_replies_fail_clearly_without_retry(
    backend: OpenAIBackend, server: ChatServer, action: str, message: str
) -> None:
    server.script.append(action)

    with pytest.raises(MalformedReply, match=message):
        backend.generate(PROMPTS[:1], SamplingParams())
    assert len(server.requests) == 1


def test_unreachable_server_is_unavailable() -> None:
    with socket.socket() as sock:  # a port that was free a moment ago and has no listener now
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with (
        OpenAIBackend(f"http://127.0.0.1:{port}/v1", "m", max_retries=1, backoff_s=0.01) as client,
        pytest.raises(BackendUnavailable, match="ConnectError"),
    ):
        client.generate(PROMPTS[:1], SamplingParams())


def test_one_failure_fails_the_whole_call(backend: OpenAIBackend, server: ChatServer) -> None:
    server.script.extend(["ok", "400"])

    with pytest.raises(RequestRejected):
        backend.generate(PROMPTS, PARAMS)


def test_unstorable_characters_in_a_reply_become_replacement_characters(backend: OpenAIBackend) -> None:
    # The fake server echoes the user's words, so a NUL (which PostgreSQL refuses) comes back in the
    # reply as a remote model could send it.
    (out,) = backend.generate(
        [[{"role": "user", "content": "nul\x00 here"}]], SamplingParams(seed=None, max_new_tokens=8)
    )
    assert out.text.startswith("echo nul\ufffd here") and "\x00" not in out.text


def test_every_generation_is_storable_whatever_made_it() -> None:
    made = Generation("a\x00b\udfffc \U0001f600", 5, "stop")
    assert made.text == "a\ufffdb\ufffdc \U0001f600" and (made.token_count, made.finish_reason) == (5, "stop")


def test_each_generation_records_the_model_the_server_named(backend: OpenAIBackend) -> None:
    out = backend.generate(PROMPTS, PARAMS)

    assert {g.model for g in out} == {"tiny-chat"}
    assert out[0].record() == {"finish_reason": "stop", "served_model": "tiny-chat"}


def test_a_reply_from_another_model_is_refused_not_stored(backend: OpenAIBackend, server: ChatServer) -> None:
    server.script.append("other-model")

    with pytest.raises(WrongModel, match="answered as model 'someone-else', not 'tiny-chat'") as err:
        backend.generate(PROMPTS[:1], SamplingParams())
    assert isinstance(err.value, ServingRefused)  # a job fails on it instead of retrying
    assert len(server.requests) == 1


def test_without_the_model_check_the_servers_name_is_still_recorded(server: ChatServer) -> None:
    server.script.append("other-model")
    with OpenAIBackend(f"{server.url}/v1", "tgi", expect_model=False) as client:
        (out,) = client.generate(PROMPTS[:1], SamplingParams())

    assert out.model == "someone-else"


def test_a_lora_child_is_loaded_once_under_its_name_before_it_generates(server: ChatServer) -> None:
    with OpenAIBackend(f"{server.url}/v1", "policy-4", lora_path="/models/policy-4/adapter") as client:
        client.generate(PROMPTS[:1], SamplingParams())
        client.generate(PROMPTS[:1], SamplingParams())

    assert server.loaded == [{"lora_name": "policy-4", "lora_path": "/models/policy-4/adapter"}]
    assert [r["path"] for r in server.requests] == ["/v1/load_lora_adapter"] + ["/v1/chat/completions"] * 2


def test_an_adapter_the_server_already_holds_is_not_an_error(server: ChatServer) -> None:
    server.loaded.append({"lora_name": "policy-4", "lora_path": "/elsewhere"})  # loaded by another app process
    with OpenAIBackend(f"{server.url}/v1", "policy-4", lora_path="/models/policy-4/adapter") as client:
        (out,) = client.generate(PROMPTS[:1], SamplingParams())

    assert out.model == "policy-4"


def test_a_server_without_runtime_lora_loading_refuses_clearly(server: ChatServer) -> None:
    server.script.append("404")  # vLLM without VLLM_ALLOW_RUNTIME_LORA_UPDATING has no such route
    with (
        OpenAIBackend(f"{server.url}/v1", "policy-4", lora_path="/a") as client,
        pytest.raises(RequestRejected, match="loading the LoRA adapter rejected with HTTP 404"),
    ):
        client.generate(PROMPTS[:1], SamplingParams())
