"""Text generation behind one small interface, so the pair pool, PPO rollouts and the
playground do not care whether the policy runs in this process or behind an HTTP endpoint.

- ``GenerationBackend.generate(prompts, params) -> list[Generation]``
- ``TransformersBackend``: a warm in-process transformers model, batched;
- ``OpenAIBackend``: any OpenAI-compatible chat-completions server (vLLM, llama.cpp, TGI);
- ``backend_from_config(config)``: builds the backend a policy version's config names.
"""

from app.generation.factory import InvalidBackendConfig, backend_from_config
from app.generation.openai_backend import BackendUnavailable, MalformedReply, OpenAIBackend, RequestRejected, WrongModel
from app.generation.transformers_backend import TransformersBackend
from app.generation.types import (
    FinishReason,
    Generation,
    GenerationBackend,
    GenerationError,
    Messages,
    SamplingParams,
    ServingRefused,
)

__all__ = [
    "BackendUnavailable",
    "FinishReason",
    "Generation",
    "GenerationBackend",
    "GenerationError",
    "InvalidBackendConfig",
    "MalformedReply",
    "Messages",
    "OpenAIBackend",
    "RequestRejected",
    "SamplingParams",
    "ServingRefused",
    "WrongModel",
    "TransformersBackend",
    "backend_from_config",
]
