"""``backend_from_config``: a policy version's stored config picks and configures its backend."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.generation import InvalidBackendConfig, OpenAIBackend, SamplingParams, TransformersBackend, backend_from_config


def test_openai_config_builds_an_http_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_VLLM_KEY", "sk-from-env")
    backend = backend_from_config(
        {
            "backend": "openai",
            "base_url": "http://gpu:8000/v1",
            "model": "policy-3",
            "api_key_env": "TEST_VLLM_KEY",
            "timeout_s": 30,
            "temperature": 0.7,
        }
    )
    try:
        assert isinstance(backend, OpenAIBackend)
        assert backend.model == "policy-3"
        assert backend._client.headers["Authorization"] == "Bearer sk-from-env"
        assert backend._client.timeout.read == 30
    finally:
        backend.close()


def test_transformers_config_loads_a_checkpoint_folder(tmp_path: Path, tiny_model, smollm2_tokenizer) -> None:
    tiny_model.save_pretrained(tmp_path)
    smollm2_tokenizer.save_pretrained(tmp_path)

    backend = backend_from_config({"backend": "transformers", "path": str(tmp_path), "batch_size": 3, "streams": 3})

    assert isinstance(backend, TransformersBackend) and backend.batch_size == 3 and backend.streams == 3
    assert len(backend.generate([[{"role": "user", "content": "Hi"}]], SamplingParams(max_new_tokens=2, seed=0))) == 1


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({}, "backend"),
        ({"backend": "vllm-magic"}, "backend"),
        ({"backend": "transformers"}, "path"),
        ({"backend": "transformers", "path": "x", "batch_size": 0}, "batch_size"),
        ({"backend": "transformers", "path": "x", "batch_size": "8"}, "batch_size"),
        ({"backend": "transformers", "path": "x", "streams": -1}, "streams"),
        ({"backend": "transformers", "path": "x", "streams": 1.5}, "streams"),
        ({"backend": "openai", "base_url": "http://h/v1"}, "model"),
        ({"backend": "openai", "base_url": "gpu:8000", "model": "m"}, "base_url"),
        ({"backend": "openai", "base_url": "http://h/v1", "model": "m", "timeout_s": -1}, "timeout_s"),
        (
            {"backend": "openai", "base_url": "http://h/v1", "model": "m", "api_key_env": "RLHF_TEST_UNSET_KEY"},
            "api_key_env",
        ),
    ],
)
def test_bad_configs_name_the_field(config: dict, field: str) -> None:
    with pytest.raises(InvalidBackendConfig) as err:
        backend_from_config(config)
    assert err.value.field == field
