"""Build the backend that serves a policy version, from the ``config`` stored with it.

    {"backend": "transformers", "path": "var/models/policy-3", "batch_size": 64}
    {"backend": "transformers", "path": "var/models/policy-3", "streams": 4}   # batches decoded at once
    {"backend": "openai", "base_url": "http://gpu-box:8000/v1", "model": "policy-3",
     "api_key_env": "VLLM_API_KEY"}
    {"backend": "openai", "base_url": "http://gpu-box:8000/v1", "model": "policy-4",
     "lora_path": "/models/policy-4/adapter"}            # vLLM loads the adapter on first use

The config also carries generation defaults, so keys this factory does not know are ignored.
An API key may be stored inline (``api_key``) or, better, named by environment variable
(``api_key_env``) so the secret never lands in the database.

The caller keeps the returned backend warm: loading a model per request would dominate.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

from app.generation.types import GenerationBackend


class InvalidBackendConfig(ValueError):
    """A policy's backend config is unusable; ``field`` names the offending key (mirrors
    ``app.errors.Invalid``, which this package may not import)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def backend_from_config(config: Mapping[str, Any]) -> GenerationBackend:
    """The backend ``config["backend"]`` names, built from the rest of ``config``."""
    kind = config.get("backend")
    builder = _BUILDERS.get(kind) if isinstance(kind, str) else None
    if builder is None:
        raise InvalidBackendConfig("backend", f"got {kind!r}; expected one of {sorted(_BUILDERS)}")
    return builder(config)


def _transformers(config: Mapping[str, Any]) -> GenerationBackend:
    from app.generation.transformers_backend import TransformersBackend

    return TransformersBackend.from_path(
        _required_str(config, "path"),
        batch_size=_positive(config, "batch_size", 64, int),  # app.registry.serving.IN_PROCESS_BATCH
        dtype=config.get("dtype", "auto"),
        device=config.get("device", "cpu"),
        streams=_positive(config, "streams", 0, int, allow_zero=True),  # 0: the backend chooses
    )


def _openai(config: Mapping[str, Any]) -> GenerationBackend:
    from app.generation.openai_backend import OpenAIBackend

    base_url = _required_str(config, "base_url")
    if not base_url.startswith(("http://", "https://")):
        raise InvalidBackendConfig("base_url", f"{base_url!r} is not an http(s) URL")
    return OpenAIBackend(
        base_url,
        _required_str(config, "model"),
        api_key=_api_key(config),
        timeout_s=_positive(config, "timeout_s", 120.0, float),
        connect_timeout_s=_positive(config, "connect_timeout_s", 5.0, float),
        max_retries=_positive(config, "max_retries", 3, int, allow_zero=True),
        max_concurrency=_positive(config, "max_concurrency", 8, int),
        expect_model=_flag(config, "expect_model", True),
        lora_path=_optional_str(config, "lora_path"),
    )


_BUILDERS: dict[str, Callable[[Mapping[str, Any]], GenerationBackend]] = {
    "transformers": _transformers,
    "openai": _openai,
}


def _api_key(config: Mapping[str, Any]) -> str | None:
    env = config.get("api_key_env")
    if env is None:
        return config.get("api_key") or None
    if not isinstance(env, str) or env not in os.environ:
        raise InvalidBackendConfig("api_key_env", f"environment variable {env!r} is not set")
    return os.environ[env]


def _flag(config: Mapping[str, Any], key: str, default: bool) -> bool:
    value = config.get(key, default)
    if not isinstance(value, bool):
        raise InvalidBackendConfig(key, f"must be true or false, got {value!r}")
    return value


def _optional_str(config: Mapping[str, Any], key: str) -> str | None:
    return None if config.get(key) is None else _required_str(config, key)


def _required_str(config: Mapping[str, Any], key: str) -> str:
    value = config.get(key)
    if not isinstance(value, str) or not value.strip():
        raise InvalidBackendConfig(key, "required, a non-empty string")
    return value


def _positive(config: Mapping[str, Any], key: str, default: float, kind: type, *, allow_zero: bool = False) -> Any:
    value = config.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and not isinstance(value, int)):
        raise InvalidBackendConfig(key, f"must be a {kind.__name__}, got {value!r}")
    if value < 0 or (value == 0 and not allow_zero):
        raise InvalidBackendConfig(key, f"must be {'>= 0' if allow_zero else '> 0'}, got {value!r}")
    return kind(value)
