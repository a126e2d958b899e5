"""Generation through any OpenAI-compatible chat-completions server (vLLM, llama.cpp server, TGI).

Each response is one ``POST {base_url}/chat/completions`` with ``n=1``: not every server
honours ``n > 1`` (llama.cpp and TGI answer with one choice), and one request per sample lets
each carry its own seed (``seed + k`` for the k-th sample). Requests run concurrently on a
small thread pool over one keep-alive ``httpx.Client``.

Failures are sorted once, here: timeouts, dropped connections, 5xx, 408 and 429 are transient
and retried with exponential backoff and jitter; any other 4xx means the request itself is wrong
(unknown model, bad key) and is raised at once as ``RequestRejected``; a 2xx whose body is not a
chat completion raises ``MalformedReply`` naming what is missing, since resending would not fix it.

The reply's ``model`` is what each ``Generation`` records. A server that answers for another model
than the one asked for (a vLLM restarted on the wrong checkpoint, a proxy routing elsewhere) raises
``WrongModel``: its answers must never be stored as the version's. TGI names its one model whatever
was asked; ``expect_model=False`` turns the check off for such servers, and the name is still recorded.

A LoRA child served by vLLM (``--enable-lora``, ``VLLM_ALLOW_RUNTIME_LORA_UPDATING=True``) names its
adapter folder in ``lora_path``: the first call loads it with ``POST /load_lora_adapter`` under the
version's model name, so promoting the child is all it takes for the server to serve it.
"""

from __future__ import annotations

import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from app.generation.types import (
    FinishReason,
    Generation,
    GenerationError,
    Messages,
    SamplingParams,
    ServingRefused,
)

RETRYABLE_STATUS = frozenset({408, 429})  # plus every 5xx: the server, not the request, failed
STOP_REASONS = frozenset({"stop", "eos", "eos_token", "stop_sequence"})  # TGI and older servers vary


class RequestRejected(ServingRefused):
    """The server refused the request (4xx): retrying the same request cannot help."""

    def __init__(self, status_code: int, detail: str, *, what: str = "chat completion") -> None:
        super().__init__(f"{what} rejected with HTTP {status_code}: {detail}")
        self.status_code = status_code


class WrongModel(ServingRefused):
    """The server answered for another model than the one asked for."""


class BackendUnavailable(GenerationError):
    """The server kept failing (timeouts, connection errors, 5xx) through every retry."""


class MalformedReply(GenerationError):
    """The server answered 2xx with something that is not a chat completion."""


class OpenAIBackend:
    """A ``GenerationBackend`` over an OpenAI-compatible ``/chat/completions`` endpoint."""

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        timeout_s: float = 120.0,
        connect_timeout_s: float = 5.0,
        max_retries: int = 3,
        backoff_s: float = 0.5,
        max_backoff_s: float = 8.0,
        max_concurrency: int = 8,
        expect_model: bool = True,
        lora_path: str | None = None,
    ) -> None:
        self.model = model
        self.expect_model = expect_model
        self.lora_path = lora_path
        self._adapter_lock = threading.Lock()
        self._adapter_loaded = lora_path is None
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.max_concurrency = max(1, max_concurrency)
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(
            base_url=base_url.rstrip("/") + "/",
            headers=headers,
            timeout=httpx.Timeout(timeout_s, connect=connect_timeout_s),
            limits=httpx.Limits(max_connections=self.max_concurrency),
        )

    def generate(self, prompts: list[Messages], params: SamplingParams) -> list[Generation]:
        """``params.n`` responses per prompt, prompt-major (see ``GenerationBackend``)."""
        self._load_adapter()
        payloads = [self._payload(messages, params, k) for messages in prompts for k in range(params.n)]
        if len(payloads) <= 1 or self.max_concurrency == 1:
            return [self._complete(payload) for payload in payloads]
        pool = ThreadPoolExecutor(
            max_workers=min(self.max_concurrency, len(payloads)), thread_name_prefix="chat-completions"
        )
        try:
            futures = [pool.submit(self._complete, payload) for payload in payloads]
            return [future.result() for future in futures]
        finally:  # one failure fails the call: drop queued requests instead of waiting on them
            pool.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> OpenAIBackend:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _payload(self, messages: Messages, params: SamplingParams, sample: int) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "max_tokens": params.max_new_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "n": 1,
            "stream": False,
        }
        if params.seed is not None:
            payload["seed"] = params.seed + sample
        return payload

    def _complete(self, payload: dict[str, Any]) -> Generation:
        generation = parse_chat_completion(self._post_with_retries("chat/completions", payload))
        if self.expect_model and generation.model != self.model:
            raise WrongModel(
                f"{self._client.base_url} answered as model {generation.model!r}, not {self.model!r}: "
                "it serves another model (point the version at the right server, or load the model there)"
            )
        return generation

    def _load_adapter(self) -> None:
        """Have the server load this version's LoRA adapter, once per backend (vLLM's runtime LoRA loading)."""
        with self._adapter_lock:
            if self._adapter_loaded:
                return
            body = {"lora_name": self.model, "lora_path": self.lora_path}
            try:
                self._post_with_retries("load_lora_adapter", body, what="loading the LoRA adapter")
            except RequestRejected as exc:
                if "already" not in str(exc).lower():  # vLLM answers 400 "… has already been loaded"
                    raise
            self._adapter_loaded = True

    def _post_with_retries(
        self, path: str, payload: dict[str, Any], *, what: str = "chat completion"
    ) -> httpx.Response:
        """POST until a 2xx, a non-retryable 4xx, or the retries run out."""
        failure = ""
        for attempt in range(self.max_retries + 1):
            if attempt:
                time.sleep(self._backoff(attempt))
            try:
                response = self._client.post(path, json=payload)
            except httpx.TransportError as exc:  # timeouts, refused or dropped connections
                failure = f"{type(exc).__name__}: {exc}"
                continue
            if response.is_success:
                return response
            if response.status_code < 500 and response.status_code not in RETRYABLE_STATUS:
                raise RequestRejected(response.status_code, _snippet(response.text), what=what)
            failure = f"HTTP {response.status_code}: {_snippet(response.text)}"
        raise BackendUnavailable(f"{self._client.base_url}{path} failed {self.max_retries + 1} times; last: {failure}")

    def _backoff(self, attempt: int) -> float:
        """Exponential backoff with jitter, so concurrent callers do not retry in lockstep."""
        return min(self.max_backoff_s, self.backoff_s * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)


def parse_chat_completion(response: httpx.Response) -> Generation:
    """The first choice of a chat-completion reply, or ``MalformedReply`` saying what is wrong."""
    try:
        body = response.json()
    except ValueError:
        raise MalformedReply(f"reply is not JSON: {_snippet(response.text)}") from None
    try:
        choice = body["choices"][0]
        content = choice["message"]["content"]
        reason = choice["finish_reason"]
        tokens = body["usage"]["completion_tokens"]
    except (KeyError, IndexError, TypeError) as exc:
        raise MalformedReply(
            f"reply lacks {exc!s} (want choices[0].message.content, choices[0].finish_reason, "
            f"usage.completion_tokens): {_snippet(response.text)}"
        ) from None
    if not isinstance(content, str):
        raise MalformedReply(f"choices[0].message.content is {type(content).__name__}, not a string")
    if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 0:
        raise MalformedReply(f"usage.completion_tokens is {tokens!r}, not a count")
    model = body.get("model")
    return Generation(content.strip(), tokens, _finish_reason(reason), model=model if isinstance(model, str) else None)


def _finish_reason(reason: object) -> FinishReason:
    if reason == "length":
        return "length"
    if reason in STOP_REASONS:
        return "stop"
    raise MalformedReply(f"unsupported finish_reason {reason!r}")


def _snippet(text: str, limit: int = 200) -> str:
    """Enough of a body to diagnose, never a whole HTML error page in a log line."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "…"
