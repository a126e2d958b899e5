"""Schemathesis hooks for ``test_schemathesis``: keep the fuzzer from locking itself out.

Its admin would otherwise, sooner or later, revoke its own API token (``DELETE /api/v1/tokens/{id}``,
the id found by the stateful phase through ``GET /api/v1/tokens``) or reset, demote or deactivate one of
the three accounts it signs in with (``PATCH /api/v1/users/{id}``), and every request after that would be
a 401 or a 403 that tests nothing. Cases aimed at those ids are sent to an id that does not exist
instead (a 404: still a request checked, its body and answer unchanged). The ids come from
``FUZZ_PROTECTED`` (JSON: ``{"users": [...], "tokens": [...]}``), set by the test.
"""

from __future__ import annotations

import json
import os
from typing import Any

import schemathesis

PROTECTED = json.loads(os.environ.get("FUZZ_PROTECTED", "{}"))
GUARDED = {
    ("PATCH", "/api/v1/users/{user_id}"): ("user_id", set(PROTECTED.get("users", []))),
    ("DELETE", "/api/v1/tokens/{token_id}"): ("token_id", set(PROTECTED.get("tokens", []))),
}
ABSENT_ID = 2_000_000_000  # within every bound, never reached by a test server's sequences


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    guard = GUARDED.get((case.operation.method.upper(), case.operation.path))
    if guard is None or not isinstance(case.path_parameters, dict):
        return
    name, ids = guard
    value = case.path_parameters.get(name)
    if value in ids or str(value) in {str(i) for i in ids}:
        case.path_parameters[name] = ABSENT_ID
