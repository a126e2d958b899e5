"""Chat tests reuse the pool's tiny policies and its session-wide warm generation process."""

from tests.pool.conftest import pool_settings, tiny_policies, warm_socket  # noqa: F401
