"""The dashboard's browser test trains a real reward job on the reward tests' tiny Llama backbone."""

from tests.rewards.conftest import tiny_backbone  # noqa: F401
