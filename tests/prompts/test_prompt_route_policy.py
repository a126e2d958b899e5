"""Every prompts route answers each kind of caller as it declares (the app-wide walk, on our routes only,
so that a failure elsewhere in the app cannot hide one here)."""

from __future__ import annotations

import pytest

from app.auth.policy import Access, endpoints, route_access
from tests.auth.test_route_policy import CALLERS, _caller_credentials, _expected_denial, _request

PREFIXES = ("/admin/prompt-sets", "/api/v1/prompt-sets")


def test_prompts_routes_declare_a_rule(app):
    routes = [r for r in endpoints(app) if r.path.startswith(PREFIXES)]
    assert len(routes) >= 15
    assert all(route_access(r) in (Access.admin, Access.researcher) for r in routes)
    writes = [r for r in routes if r.methods - {"GET", "HEAD"}]
    assert all(route_access(r) is Access.admin for r in writes)


@pytest.mark.parametrize("caller", CALLERS)
def test_prompts_routes_answer_each_caller(app, client, db, settings, caller):
    checked = 0
    for route in endpoints(app):
        if not route.path.startswith(PREFIXES):
            continue
        access, is_api = route_access(route), route.path.startswith("/api/")
        for method in route.methods - {"HEAD"}:
            response = _request(client, method, route.path, _caller_credentials(db, settings, caller), is_api)
            where = f"{caller} {method} {route.path} -> {response.status_code}"
            denial = _expected_denial(access, caller, is_api)
            if denial == "unauthenticated":
                expected = 401 if is_api else 303
                assert response.status_code == expected, where
            elif denial == "forbidden":
                assert response.status_code == 403, where
            else:
                assert response.status_code not in (401, 403, 500), where
            checked += 1
    assert checked >= 15
