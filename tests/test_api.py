"""The REST API (/api/v1): tokens, ownership, limits, validation, admin routes and the OpenAPI document."""

from __future__ import annotations

from typing import Any

import pytest
from openapi_spec_validator import validate

from devstack.local_broker import RunningBroker
from tests.api_helpers import API, answered, call, new_token
from tests.login_helpers import csrf_of, raw_session, session_header
from tests.pki_helpers import Pki
from tests.stack_helpers import local_stack

pytestmark = pytest.mark.integration


async def test_token_valid_revoked_wrong_and_missing(pki: Pki, broker: RunningBroker) -> None:
    """A token asks and reads its answer; revoked, wrong or missing tokens get 401 with a stable code."""
    async with local_stack(pki, broker, workers=1) as stack, raw_session(pki) as http:
        token = await new_token(http, stack, stack.cookie)
        status, body, _ = await call(http, "POST", stack.url + f"{API}/tasks", token, json={"text": "hello api"})
        assert status == 202
        result = await answered(http, stack, token, body["task_id"])
        assert result["state"] == "answered" and result["answer"].endswith("You said: hello api")
        status, listed, _ = await call(http, "GET", stack.url + f"{API}/tokens", token)
        [info] = listed["tokens"]
        assert "token" not in info
        headers = {**session_header(stack.cookie), "X-CSRF-Token": await csrf_of(http, stack.url, stack.cookie)}
        assert (await call(http, "DELETE", stack.url + f"{API}/tokens/{info['id']}", headers=headers))[0] == 204
        for bad in (token, "aisys_" + "x" * 43):
            status, body, _ = await call(http, "GET", stack.url + f"{API}/tasks", bad)
            assert status == 401 and body["error"]["code"] == "bad_token"
        status, body, _ = await call(http, "GET", stack.url + f"{API}/tasks")
        assert status == 401 and body["error"]["code"] == "not_logged_in"


async def test_another_users_task_is_not_found(pki: Pki, broker: RunningBroker) -> None:
    """User B reading or stopping user A's task gets 404, exactly as for a task that does not exist."""
    # The task runs 10 s: still running when its owner stops it after B's four calls (it is stopped at once).
    async with local_stack(pki, broker, workers=1, worker_overrides={"echo_latency_s": 10.0}) as stack, \
            raw_session(pki) as http:
        a = await new_token(http, stack, stack.cookie)
        b = await new_token(http, stack, await stack.login(await stack.new_user()))
        _, body, _ = await call(http, "POST", stack.url + f"{API}/tasks", a, json={"text": "mine"})
        theirs = body["task_id"]
        for method in ("GET", "DELETE"):
            status, err, _ = await call(http, method, stack.url + f"{API}/tasks/{theirs}", b)
            missing = await call(http, method, stack.url + f"{API}/tasks/{'0' * 32}", b)
            assert status == 404 and (status, err) == missing[:2]
        assert (await call(http, "DELETE", stack.url + f"{API}/tasks/{theirs}", a))[0] == 204  # the owner may
        result = await answered(http, stack, a, theirs)
        assert result["state"] == "failed" and result["error"]["code"] == "stopped"  # it was running


async def test_rate_limit_applies_to_the_api(pki: Pki, broker: RunningBroker) -> None:
    """The chat's per-user limits apply: over the burst, 429 with Retry-After and the limit's code."""
    overrides = {"rate_per_minute": 6, "rate_burst": 2}
    async with local_stack(pki, broker, workers=1, master_overrides=overrides) as stack, raw_session(pki) as http:
        token = await new_token(http, stack, stack.cookie)
        codes = [(await call(http, "POST", stack.url + f"{API}/tasks", token, json={"text": f"q{i}"}))
                 for i in range(3)]
        assert [c[0] for c in codes] == [202, 202, 429]
        assert codes[2][1]["error"]["code"] == "rate_limited" and int(codes[2][2].headers["Retry-After"]) >= 1


@pytest.mark.parametrize("payload, field", [({"text": 5}, "text"), ({}, "text"), ({"text": "x", "model": 7}, "model")])
async def test_schema_errors_are_422_naming_the_field(pki: Pki, broker: RunningBroker, payload: Any, field: str) -> None:
    """A body of the wrong shape is 422 and names the field; nothing is queued."""
    async with local_stack(pki, broker, workers=0) as stack, raw_session(pki) as http:
        token = await new_token(http, stack, stack.cookie)
        status, body, _ = await call(http, "POST", stack.url + f"{API}/tasks", token, json=payload)
        assert status == 422 and field in body["error"]["fields"], body
        assert stack.master.dispatcher.tasks == {}


async def test_session_without_csrf_cannot_change_anything(pki: Pki, broker: RunningBroker) -> None:
    """With the session cookie, a POST without X-CSRF-Token is 403 (a Bearer token needs none)."""
    async with local_stack(pki, broker, workers=1) as stack, raw_session(pki) as http:
        status, body, _ = await call(http, "POST", stack.url + f"{API}/tasks", json={"text": "x"},
                                     headers=session_header(stack.cookie))
        assert status == 403 and body["error"]["code"] == "csrf"


async def test_admin_routes_need_the_admin_role(pki: Pki, broker: RunningBroker) -> None:
    """GET /workers and /stats: 403 for a user, 200 for an admin (with the live worker listed)."""
    async with local_stack(pki, broker, workers=1) as stack, raw_session(pki) as http:
        user = await new_token(http, stack, stack.cookie)
        admin = await new_token(http, stack, await stack.login(await stack.new_user(role="admin")))
        for path in ("workers", "stats"):
            status, body, _ = await call(http, "GET", stack.url + f"{API}/{path}", user)
            assert status == 403 and body["error"]["code"] == "admin_only"
        status, body, _ = await call(http, "GET", stack.url + f"{API}/workers", admin)
        assert status == 200 and [w["state"] for w in body["workers"]] == ["idle"]
        status, body, _ = await call(http, "GET", stack.url + f"{API}/stats", admin)
        assert status == 200 and body["workers_live"] == 1


async def test_openapi_document_is_valid_and_matches_the_routes(pki: Pki, broker: RunningBroker) -> None:
    """The generated OpenAPI 3.1 document validates, lists every /api/v1 route, and lists nothing else."""
    async with local_stack(pki, broker, workers=0) as stack, raw_session(pki) as http:
        status, doc, _ = await call(http, "GET", stack.url + f"{API}/openapi.json")
        assert status == 200 and doc["openapi"].startswith("3.1")
        validate(doc)
        documented = {(path, method.upper()) for path, item in doc["paths"].items() for method in item}
        routes = set()
        for rule in stack.master.http.url_map.iter_rules():
            path = rule.rule.replace("<int:", "<").replace("<", "{").replace(">", "}")
            if path.startswith(API) and path != f"{API}/openapi.json":
                routes |= {(path, m) for m in rule.methods or () if m not in ("HEAD", "OPTIONS")}
        assert routes == documented
