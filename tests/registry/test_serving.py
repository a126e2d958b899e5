"""Pointing a policy version at an OpenAI-compatible server, and how the versions trained from it are served."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.errors import Invalid, NotFound
from app.registry.models import ModelKind, ModelVersion
from app.registry.serving import IN_PROCESS_BATCH, ServerSpec, child_serving_config, serve_from, serve_in_process
from tests.factories import ModelVersionFactory

URL = "http://gpu-box:8000/v1"


def _folder(root: Path, name: str, *, adapter: bool = False) -> Path:
    folder = root / name
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    if adapter:
        (folder / "adapter").mkdir()
        (folder / "adapter" / "adapter_config.json").write_text("{}")
    return folder


def _policy(root: Path, name: str = "p0", **config) -> ModelVersion:
    folder = _folder(root, name)
    return ModelVersionFactory(name=name, kind=ModelKind.policy, path=str(folder), config=config)


def test_by_path_names_the_folder_and_keeps_what_is_not_serving(db, tmp_path):
    version = _policy(tmp_path, backend="transformers", path="x", batch_size=16, card={"steps": 3})

    serve_from(db, version.id, ServerSpec(base_url=URL, load="by_path"))

    assert version.config == {
        "backend": "openai",
        "base_url": URL,
        "load": "by_path",
        "model": str((tmp_path / "p0").resolve()),
        "expect_model": True,
        "timeout_s": 120.0,
        "max_concurrency": 8,
        "card": {"steps": 3},  # the training record stays; the in-process keys go
    }
    serve_in_process(db, version.id)
    assert version.config == {
        "backend": "transformers",
        "path": str((tmp_path / "p0").resolve()),
        "batch_size": IN_PROCESS_BATCH,
        "card": {"steps": 3},
    }


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        (ServerSpec(base_url="ftp://gpu-box/v1", model="m"), "base_url"),
        (ServerSpec(base_url=URL), "model"),  # fixed: the server's model name is needed
        (ServerSpec(base_url=URL, load="lora"), "model"),  # a base version without adapters: name its model
        (ServerSpec(base_url=URL, model="m", api_key_env="RLHF_TEST_UNSET_KEY"), "api_key_env"),
        (ServerSpec(base_url=URL, model="m", load="sideways"), "load"),  # type: ignore[arg-type]
    ],
)
def test_unusable_servers_are_refused_by_field(db, tmp_path, spec, field):
    version = _policy(tmp_path)

    with pytest.raises(Invalid) as err:
        serve_from(db, version.id, spec)
    assert err.value.field == field
    assert version.config == {}


def test_a_reward_model_is_not_served(db, tmp_path):
    reward = ModelVersionFactory(kind=ModelKind.reward, path=str(tmp_path))
    with pytest.raises(NotFound, match="policy version"):
        serve_from(db, reward.id, ServerSpec(base_url=URL, model="m"))


def test_children_follow_the_parents_server_when_it_can_take_them(db, tmp_path):
    by_path = _policy(tmp_path, "a")
    serve_from(db, by_path.id, ServerSpec(base_url=URL, load="by_path", api_key_env=None))
    child = _folder(tmp_path, "a-child")
    assert child_serving_config(by_path, child, "a-child")["model"] == str(child.resolve())
    assert child_serving_config(by_path, child, "a-child")["base_url"] == URL

    base = _policy(tmp_path, "b")
    serve_from(db, base.id, ServerSpec(base_url=URL, load="lora", model="HuggingFaceTB/SmolLM2-135M-Instruct"))
    lora_child = _folder(tmp_path, "b-child", adapter=True)
    config = child_serving_config(base, lora_child, "b-child")
    assert (config["model"], config["lora_path"]) == ("b-child", str((lora_child / "adapter").resolve()))
    # a grandchild's adapter was trained on its parent's merged weights, which the server does not hold
    parent = ModelVersionFactory(kind=ModelKind.policy, path=str(lora_child), config=config)
    grandchild = _folder(tmp_path, "b-grandchild", adapter=True)
    assert child_serving_config(parent, grandchild, "b-grandchild")["backend"] == "transformers"
    # a child trained without LoRA has no adapter for the server to load
    assert child_serving_config(base, _folder(tmp_path, "b-full"), "b-full")["backend"] == "transformers"

    fixed = _policy(tmp_path, "c")
    serve_from(db, fixed.id, ServerSpec(base_url=URL, model="c"))
    assert child_serving_config(fixed, _folder(tmp_path, "c-child"), "c-child") == {
        "backend": "transformers",
        "path": str((tmp_path / "c-child").resolve()),
        "batch_size": IN_PROCESS_BATCH,
    }


def test_a_lora_child_pointed_at_vllm_loads_its_adapter_under_its_name(db, tmp_path):
    folder = _folder(tmp_path, "lora-v1", adapter=True)
    version = ModelVersionFactory(name="lora-v1", kind=ModelKind.policy, path=str(folder), config={})

    serve_from(db, version.id, ServerSpec(base_url=URL, load="lora"))

    assert (version.config["model"], version.config["lora_path"]) == ("lora-v1", str(folder / "adapter"))


def test_in_process_children_keep_the_parents_in_process_settings(tmp_path):
    parent = ModelVersion(name="p", kind=ModelKind.policy, config={"backend": "transformers", "batch_size": 8,
                                                                    "device": "cpu", "path": "/old"})  # fmt: skip
    child = _folder(tmp_path, "child")
    assert child_serving_config(parent, child, "child") == {
        "backend": "transformers",
        "path": str(child.resolve()),
        "batch_size": 8,
        "device": "cpu",
    }
