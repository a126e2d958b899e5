"""Where a policy version is served: in process from its folder, or by an OpenAI-compatible server.

Training always reads the version's local folder (``ModelVersion.path``); only generation (the pool, chat,
evaluation) follows the serving config. A server takes a newly trained version in one of three ways, the
``load`` an admin chose when pointing the first version at it:

- ``by_path``: the server loads whichever model a request names, and a version's folder is its name
  (``transformers serve`` started without a model; a server behind a shared disk). A child is served by the
  same server as soon as it exists.
- ``lora``: vLLM started with ``--enable-lora`` and ``VLLM_ALLOW_RUNTIME_LORA_UPDATING=True`` holds the base
  version; a child trained from it with LoRA is loaded from its ``adapter/`` folder under its own name on its
  first request (``POST /v1/load_lora_adapter``). Only direct children of the served base: a grandchild's
  adapter was trained on its parent's merged weights, which the server does not hold, so it is served in
  process until an admin points it at a server.
- ``fixed``: the server serves one model; a child is served in process until an admin points it at a server
  (restarted on the child's folder, or another server per version).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from sqlalchemy.orm import Session

from app.errors import Invalid
from app.generation.factory import InvalidBackendConfig, backend_from_config
from app.registry import service as registry
from app.registry.models import ModelKind, ModelVersion

Load = Literal["fixed", "by_path", "lora"]
LOADS: tuple[Load, ...] = ("fixed", "by_path", "lora")
ADAPTER_DIR = "adapter"  # where the policy trainers save a child's LoRA adapters (app.training.core.lora)
# Keys of a serving config; everything else on a version's config (its training card, data records) stays.
SERVING_KEYS = frozenset(
    {"backend", "path", "batch_size", "device", "dtype", "base_url", "model", "load", "lora_path", "api_key_env"}
    | {"api_key", "timeout_s", "connect_timeout_s", "max_retries", "max_concurrency", "expect_model"}
)
# Rows the in-process backend decodes together: one pool call's (RLHF_POOL_BATCH_PROMPTS 16 × k 4) in one batch.
# bench/generation.py's workload on 2 cores: 153 tokens/s at 32 rows, 171 at 64; a batch runs to its longest
# row, and at the pool's 320 tokens 32 rows already hold one that reaches the cap (7 % of answers do).
IN_PROCESS_BATCH = 64


@dataclass(frozen=True)
class ServerSpec:
    """An OpenAI-compatible server as an admin describes it (``model`` may be left to the ``load``'s default)."""

    base_url: str
    load: Load = "fixed"
    model: str | None = None
    api_key_env: str | None = None
    expect_model: bool = True
    timeout_s: float = 120.0
    max_concurrency: int = 8


def serve_from(db: Session, version_id: int, spec: ServerSpec) -> ModelVersion:
    """Point a policy version at a server; the next generation of the pool or chat goes there."""
    version = registry.get_version(db, version_id, kind=ModelKind.policy)
    if spec.load not in LOADS:
        raise Invalid("load", f"got {spec.load!r}; expected one of {list(LOADS)}")
    config = {
        "backend": "openai",
        "base_url": spec.base_url,
        "load": spec.load,
        "model": spec.model or _default_model(version, spec.load),
        "expect_model": spec.expect_model,
        "timeout_s": spec.timeout_s,
        "max_concurrency": spec.max_concurrency,
    }
    if spec.api_key_env:
        config["api_key_env"] = spec.api_key_env
    if spec.load == "lora" and (adapter := adapter_folder(version)) is not None and spec.model is None:
        config["lora_path"] = str(adapter)
    _check(config)
    version.config = {**_kept(version.config), **config}
    db.flush()
    return version


def serve_in_process(db: Session, version_id: int) -> ModelVersion:
    """Back to generation in the app's own warm process, from the version's folder."""
    version = registry.get_version(db, version_id, kind=ModelKind.policy)
    if not version.path or not (Path(version.path) / "config.json").is_file():
        raise Invalid("version_id", f"policy {version.name} has no local folder to serve in process")
    version.config = {**_kept(version.config), **in_process(Path(version.path))}
    db.flush()
    return version


def child_serving_config(parent: ModelVersion, path: Path, name: str) -> dict[str, Any]:
    """How a policy trained from ``parent`` into ``path`` is served: by the parent's server where that server
    can take it (see the module's docstring), else in process with the parent's in-process settings."""
    config = dict(parent.config or {})
    if config.get("backend") == "openai":
        load = config.get("load", "fixed")
        served = {key: config[key] for key in SERVING_KEYS if key in config and key not in ("model", "lora_path")}
        if load == "by_path":
            return {**served, "model": str(path.resolve())}
        adapter = path / ADAPTER_DIR
        if load == "lora" and "lora_path" not in config and (adapter / "adapter_config.json").is_file():
            return {**served, "model": name, "lora_path": str(adapter.resolve())}
        return in_process(path)
    inherited = {key: config[key] for key in ("batch_size", "device", "dtype") if key in config}
    return {**in_process(path), **inherited}


def in_process(path: Path) -> dict[str, Any]:
    return {"backend": "transformers", "path": str(path.resolve()), "batch_size": IN_PROCESS_BATCH}


def adapter_folder(version: ModelVersion) -> Path | None:
    folder = Path(version.path or ".") / ADAPTER_DIR
    return folder if version.path and (folder / "adapter_config.json").is_file() else None


def _default_model(version: ModelVersion, load: Load) -> str:
    if load == "by_path":
        if not version.path or not (Path(version.path) / "config.json").is_file():
            raise Invalid("model", f"policy {version.name} has no local folder for the server to load; name a model")
        return str(Path(version.path).resolve())
    if load == "lora" and adapter_folder(version) is not None:
        return version.name
    raise Invalid("model", f"required: the name the server serves {version.name} under")


def _check(config: dict[str, Any]) -> None:
    """Build the backend once, so a bad URL or an unset key variable is refused now, not in a job later."""
    try:
        backend_from_config(config).close()
    except InvalidBackendConfig as exc:
        raise Invalid(exc.field, exc.message) from None


def _kept(config: dict[str, Any] | None) -> dict[str, Any]:
    return {key: value for key, value in (config or {}).items() if key not in SERVING_KEYS}
