"""The admin API and the key CLI against a real gateway process (SQLite file, Postgres, Redis).

Keys made through `/admin/keys` must work for model calls at once and stop at once when revoked;
bad admin input must get a 4xx naming the field and change nothing; only admin keys reach /admin.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.conftest import MASTER_KEY, GatewayProcess, raw_request, run_gateway

MESSAGES = [{"role": "user", "content": "hi"}]


def _config(database_url: str, redis_url: str | None = None) -> str:
    return f"""
master_key: {MASTER_KEY}
database_url: {database_url}
{f"redis_url: {redis_url}" if redis_url else ""}
tiers:
  basic: [demo]
models:
  - name: demo
    provider: mock
  - name: other
    provider: mock
"""


@pytest.fixture(scope="module")
def db_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The SQLite file of the module's gateway (tests may write ledger rows into it)."""
    return f"sqlite:///{tmp_path_factory.mktemp('admin-db')}/sg.db"


@pytest.fixture(scope="module")
def gateway(db_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    """One gateway on that file for the module; `serve` migrates it at start."""
    with run_gateway(tmp_path_factory.mktemp("admin"), _config(db_url)) as gw:
        yield gw


def call(
    gw: GatewayProcess,
    method: str,
    path: str,
    body: Any = None,
    key: str | None = MASTER_KEY,
    raw: bytes | None = None,
) -> tuple[int, Any]:
    headers = {"content-type": "application/json"}
    if key is not None:
        headers["authorization"] = f"Bearer {key}"
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    status, _, payload = raw_request(gw.url, method, path, data, headers)
    return status, json.loads(payload) if payload else None


def chat(gw: GatewayProcess, key: str, model: str = "demo") -> str | None:
    with openai.OpenAI(base_url=gw.v1, api_key=key, max_retries=0, timeout=10) as client:
        reply = client.chat.completions.create(model=model, messages=MESSAGES)  # type: ignore[arg-type]
    return reply.choices[0].message.content


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("SLUICEGATE_")}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "sluicegate", *args], capture_output=True, text=True, timeout=60, env=full_env
    )


def test_created_key_calls_models_within_its_allowlist_until_revoked(gateway: GatewayProcess) -> None:
    """A new key works at once for its models, is refused others (403), and is refused (401) once revoked."""
    status, key = call(gateway, "POST", "/admin/keys", {"alias": "app", "models": ["demo"]})
    assert status == 201 and key["key"].startswith("sk-sg-") and key["status"] == "active"
    assert chat(gateway, key["key"]) == "echo: hi"
    with pytest.raises(openai.PermissionDeniedError):
        chat(gateway, key["key"], model="other")
    status, revoked = call(gateway, "DELETE", f"/admin/keys/{key['id']}")
    assert status == 200 and revoked["status"] == "revoked"
    with pytest.raises(openai.AuthenticationError):
        chat(gateway, key["key"])
    status, kept = call(gateway, "GET", f"/admin/keys/{key['id']}")
    assert status == 200 and kept["revoked_at"] is not None and "key" not in kept


def test_tier_limits_the_models_of_a_key(gateway: GatewayProcess) -> None:
    """A key on the `basic` tier reaches only the tier's models; an unknown tier is a 400."""
    status, key = call(gateway, "POST", "/admin/keys", {"tier": "basic"})
    assert status == 201
    assert chat(gateway, key["key"]) == "echo: hi"
    with pytest.raises(openai.PermissionDeniedError):
        chat(gateway, key["key"], model="other")
    status, body = call(gateway, "POST", "/admin/keys", {"tier": "gold"})
    assert status == 400 and body["error"]["param"] == "tier"


def test_only_admin_keys_reach_the_admin_api(gateway: GatewayProcess) -> None:
    """No key is 401, a member key 403, an admin-role key works like the master key."""
    assert call(gateway, "GET", "/admin/keys", key=None)[0] == 401
    assert call(gateway, "GET", "/admin/keys", key="sk-sg-nonsense")[0] == 401
    _, member = call(gateway, "POST", "/admin/keys", {"alias": "member"})
    status, body = call(gateway, "GET", "/admin/keys", key=member["key"])
    assert status == 403 and body["error"]["type"] == "permission_error"
    assert call(gateway, "POST", "/admin/keys", {"role": "admin"}, key=member["key"])[0] == 403
    _, admin = call(gateway, "POST", "/admin/keys", {"alias": "ops", "role": "admin"})
    assert call(gateway, "GET", "/admin/keys", key=admin["key"])[0] == 200
    status, created = call(gateway, "POST", "/admin/keys", {"alias": "by-admin"}, key=admin["key"])
    assert status == 201
    _, entries = call(gateway, "GET", f"/admin/audit?object_id={created['id']}")
    assert entries["data"][0]["actor"] == admin["id"]


BAD_PAYLOADS = [
    ("POST", "/admin/keys", {"rpm": -1}, "rpm"),
    ("POST", "/admin/keys", {"budget_usd": -0.01}, "budget_usd"),
    ("POST", "/admin/keys", {"max_parallel": 1.5}, "max_parallel"),
    ("POST", "/admin/keys", {"tpm": "100"}, "tpm"),
    ("POST", "/admin/keys", {"budget_period": "1y"}, "budget_period"),
    ("POST", "/admin/keys", {"expires_at": "tomorrow"}, "expires_at"),
    ("POST", "/admin/keys", {"expires_at": "2030-01-01T00:00:00"}, "expires_at"),  # no timezone
    ("POST", "/admin/keys", {"expires_at": "2001-01-01T00:00:00Z"}, "expires_at"),  # in the past
    ("POST", "/admin/keys", {"ttl_s": 60, "expires_at": "2030-01-01T00:00:00Z"}, "ttl_s"),
    ("POST", "/admin/keys", {"unknown_field": 1}, "unknown_field"),
    ("POST", "/admin/keys", {"metadata": {"a": 1}, "extra": True}, "extra"),
    ("POST", "/admin/keys", {"role": "root"}, "role"),
    ("POST", "/admin/keys", {"models": "demo"}, "models"),
    ("POST", "/admin/keys", {"allowed_ips": ["10.0.0.0/8", "not-an-ip"]}, "allowed_ips[1]"),
    ("POST", "/admin/keys", {"team_id": "no-such-team"}, "team_id"),
    ("POST", "/admin/keys", {"team_id": "bad id with spaces"}, "team_id"),
    ("POST", "/admin/keys", {"alias": "a\u0000b"}, "alias"),
    ("POST", "/admin/keys", {"metadata": {"deep": [[[[[[[[[[1]]]]]]]]]]}}, "metadata"),
    ("POST", "/admin/keys", {"budget_usd": 1, "soft_budget_usd": 2}, "soft_budget_usd"),
    ("POST", "/admin/keys", ["not", "an", "object"], None),
    ("POST", "/admin/teams", {"id": "t'; DROP TABLE teams;--"}, "id"),
    ("POST", "/admin/teams", {"rpm": -5}, "rpm"),
    ("POST", "/admin/users", {"email": "not-an-email"}, "email"),
    ("POST", "/admin/keys/key_missing/rotate", {"grace_s": -1}, "grace_s"),
]


@pytest.mark.parametrize(("method", "path", "body", "param"), BAD_PAYLOADS)
def test_malformed_admin_payloads_are_refused_and_change_nothing(
    gateway: GatewayProcess, method: str, path: str, body: Any, param: str | None
) -> None:
    """Each bad payload is a 400 naming the field, and nothing is stored or audited."""
    before = _snapshot(gateway)
    status, answer = call(gateway, method, path, body)
    assert status == 400, answer
    assert answer["error"]["type"] == "invalid_request_error"
    assert answer["error"]["param"] == param
    if param is not None:
        assert param.split("[")[0] in answer["error"]["message"]
    assert _snapshot(gateway) == before


@pytest.mark.parametrize(
    "raw",
    [
        b"{not json",
        b'{"alias": "\xff\xfe"}',
        b"[" * 5000 + b"]" * 5000,
        b'{"metadata": ' + b'{"a":' * 2000 + b"1" + b"}" * 2001,
    ],
)
def test_undecodable_bodies_are_400(gateway: GatewayProcess, raw: bytes) -> None:
    """Invalid JSON, bad UTF-8 and absurdly deep nesting are 400s, not 500s."""
    before = _snapshot(gateway)
    status, answer = call(gateway, "POST", "/admin/keys", raw=raw)
    assert status == 400 and answer["error"]["type"] == "invalid_request_error"
    assert _snapshot(gateway) == before


def test_bad_queries_are_400(gateway: GatewayProcess) -> None:
    """Unknown query parameters, bad groups, dates, limits and cursors are 400s naming the parameter."""
    for path, param in [
        ("/admin/spend?group_by=week", "group_by"),
        ("/admin/spend?start=yesterday", "start"),
        ("/admin/spend?start=2025-02-01&end=2025-01-01", "end"),
        ("/admin/spend?groupby=key", "groupby"),
        ("/admin/logs?limit=0", "limit"),
        ("/admin/logs?status=teapot", "status"),
        ("/admin/keys?limit=abc", "limit"),
        ("/admin/keys?team_id=a&team_id=b", "team_id"),
    ]:
        status, answer = call(gateway, "GET", path)
        assert status == 400 and answer["error"]["param"] == param, (path, answer)
    status, answer = call(gateway, "GET", "/admin/keys?cursor=%%%")
    assert status == 400
    assert call(gateway, "GET", "/admin/nothing-here")[0] == 404
    assert call(gateway, "PUT", "/admin/keys")[0] == 405


def _snapshot(gw: GatewayProcess) -> tuple[Any, ...]:
    keys = call(gw, "GET", "/admin/keys?limit=1000")[1]
    teams = call(gw, "GET", "/admin/teams?limit=1000")[1]
    users = call(gw, "GET", "/admin/users?limit=1000")[1]
    audit = call(gw, "GET", "/admin/audit?limit=1")[1]
    return (
        json.dumps(keys["data"], sort_keys=True),
        json.dumps(teams["data"], sort_keys=True),
        json.dumps(users["data"], sort_keys=True),
        audit["data"][0]["seq"] if audit["data"] else 0,
    )


def test_sql_looking_strings_are_stored_verbatim(gateway: GatewayProcess) -> None:
    """Aliases and metadata that look like SQL come back unchanged and harm nothing."""
    alias = "robert'); DROP TABLE api_keys; --"
    metadata = {"q": "1' OR '1'='1", "list": ["; DELETE FROM ledger WHERE 1=1"]}
    status, key = call(gateway, "POST", "/admin/keys", {"alias": alias, "metadata": metadata})
    assert status == 201
    _, again = call(gateway, "GET", f"/admin/keys/{key['id']}")
    assert again["alias"] == alias and again["metadata"] == metadata
    assert chat(gateway, key["key"]) == "echo: hi"
    assert call(gateway, "GET", "/admin/keys/' OR 1=1 --".replace(" ", "%20"))[0] == 404


def test_teams_and_users_with_keys(gateway: GatewayProcess) -> None:
    """Teams and users are created, updated and deleted; a team with live keys cannot be deleted."""
    status, team = call(gateway, "POST", "/admin/teams", {"id": "research", "rpm": 100, "models": ["demo"]})
    assert status == 201 and team["id"] == "research"
    assert call(gateway, "POST", "/admin/teams", {"id": "research"})[0] == 409
    status, user = call(gateway, "POST", "/admin/users", {"email": "ada@example.com", "budget_usd": 10})
    assert status == 201 and user["id"].startswith("user_")
    status, key = call(gateway, "POST", "/admin/keys", {"team_id": "research", "user_id": user["id"]})
    assert status == 201
    with pytest.raises(openai.PermissionDeniedError):  # the team's allowlist applies to its keys
        chat(gateway, key["key"], model="other")
    status, patched = call(gateway, "PATCH", "/admin/teams/research", {"models": [], "alias": "R&D"})
    assert status == 200 and patched["models"] == [] and patched["alias"] == "R&D"
    assert chat(gateway, key["key"], model="other") == "echo: hi"  # the cache saw the team change
    status, body = call(gateway, "DELETE", "/admin/teams/research")
    assert status == 409 and "active key" in body["error"]["message"]
    _, listed = call(gateway, "GET", "/admin/keys?team_id=research")
    assert [k["id"] for k in listed["data"]] == [key["id"]]
    call(gateway, "DELETE", f"/admin/keys/{key['id']}")
    assert call(gateway, "DELETE", "/admin/teams/research") == (200, {"id": "research", "deleted": True})
    assert call(gateway, "GET", "/admin/teams/research")[0] == 404
    status, patched_user = call(gateway, "PATCH", f"/admin/users/{user['id']}", {"budget_usd": None})
    assert status == 200 and patched_user["budget_usd"] is None and patched_user["email"] == "ada@example.com"


def test_patch_changes_only_the_fields_sent(gateway: GatewayProcess) -> None:
    """PATCH keeps absent fields, clears `null` ones, and takes effect for the next call."""
    _, key = call(gateway, "POST", "/admin/keys", {"alias": "p", "rpm": 5, "tpm": 500, "models": ["demo"]})
    status, patched = call(gateway, "PATCH", f"/admin/keys/{key['id']}", {"rpm": None, "models": ["other"]})
    assert status == 200
    assert (patched["alias"], patched["rpm"], patched["tpm"], patched["models"]) == (
        "p",
        None,
        500,
        ["other"],
    )
    assert chat(gateway, key["key"], model="other") == "echo: hi"
    status, patched = call(gateway, "PATCH", f"/admin/keys/{key['id']}", {"ttl_s": 3600})
    assert status == 200 and patched["expires_at"] is not None


def test_rotation_over_http(gateway: GatewayProcess) -> None:
    """Rotating returns a new secret that works; the old one works only within the grace period."""
    _, key = call(gateway, "POST", "/admin/keys", {"alias": "rot"})
    status, rotated = call(gateway, "POST", f"/admin/keys/{key['id']}/rotate", {"grace_s": 60})
    assert status == 200 and rotated["id"] == key["id"] and rotated["key"] != key["key"]
    assert rotated["key_prefix"] != key["key_prefix"] and rotated["previous_valid_until"] is not None
    assert chat(gateway, rotated["key"]) == "echo: hi"
    assert chat(gateway, key["key"]) == "echo: hi"  # grace
    status, again = call(gateway, "POST", f"/admin/keys/{key['id']}/rotate")  # grace 0 by default
    assert status == 200
    with pytest.raises(openai.AuthenticationError):
        chat(gateway, rotated["key"])
    assert chat(gateway, again["key"]) == "echo: hi"
    call(gateway, "DELETE", f"/admin/keys/{key['id']}")
    assert call(gateway, "POST", f"/admin/keys/{key['id']}/rotate")[0] == 409


def test_spend_logs_and_audit_endpoints(gateway: GatewayProcess, db_url: str) -> None:
    """Spend groups ledger rows, logs page, and the audit chain verifies over HTTP."""
    from sluicegate.store import LedgerRow, LogRow, Store

    async def seed() -> None:
        store = Store.from_url(db_url)
        day = 1_740_787_200_000  # 2025-03-01
        await store.insert_rows(
            [
                LedgerRow(request_id="s1", ts=day, key_id="kA", model="demo", provider="mock", cost_usd=0.25),
                LedgerRow(request_id="s2", ts=day + 86_400_000, key_id="kA", model="demo", cost_usd=0.5),
                LedgerRow(request_id="s3", ts=day + 1, key_id="kB", model="other", cost_usd=1.0),
            ],
            [
                LogRow(request_id=f"l{i}", ts=day + i, key_id="kA", status_code=200 if i % 2 else 500)
                for i in range(5)
            ],
        )
        await store.close()

    asyncio.run(seed())
    status, report = call(gateway, "GET", "/admin/spend?group_by=day&start=2025-03-01&end=2025-03-02")
    assert status == 200
    assert [(g["group"], g["requests"], g["cost_usd"]) for g in report["data"]] == [
        ("2025-03-01", 2, 1.25),
        ("2025-03-02", 1, 0.5),
    ]
    # Bounded: the module's own model calls (today) are in the ledger too.
    _, by_key = call(gateway, "GET", "/admin/spend?group_by=key&start=2025-03-01T00:00:00Z&end=2025-03-03")
    assert {g["group"]: g["cost_usd"] for g in by_key["data"]} == {"kA": 0.75, "kB": 1.0}
    _, page = call(gateway, "GET", "/admin/logs?key_id=kA&limit=2")
    assert [r["request_id"] for r in page["data"]] == ["l4", "l3"] and page["next_cursor"]
    _, rest = call(gateway, "GET", f"/admin/logs?key_id=kA&limit=10&cursor={page['next_cursor']}")
    assert [r["request_id"] for r in rest["data"]] == ["l2", "l1", "l0"] and rest["next_cursor"] is None
    _, errors = call(gateway, "GET", "/admin/logs?status=error&key_id=kA")
    assert {r["request_id"] for r in errors["data"]} == {"l0", "l2", "l4"}
    assert call(gateway, "GET", "/admin/logs/l3")[1]["status_code"] == 200
    _, audit = call(gateway, "GET", "/admin/audit?verify=true&limit=5")
    assert audit["chain"]["ok"] and audit["chain"]["rows"] >= len(audit["data"]) > 0


def test_openapi_document_describes_the_admin_api(gateway: GatewayProcess) -> None:
    """/admin/openapi.json is OpenAPI 3.1 JSON with every admin path and the request schemas."""
    status, _, raw = raw_request(gateway.url, "GET", "/admin/openapi.json")
    assert status == 200
    doc = json.loads(raw)
    assert doc["openapi"].startswith("3.1")
    for path in ("/admin/keys", "/admin/keys/{key_id}", "/admin/keys/{key_id}/rotate", "/admin/teams",
                 "/admin/users/{id}", "/admin/spend", "/admin/logs", "/admin/audit"):  # fmt: skip
        assert path in doc["paths"], path
    create = doc["paths"]["/admin/keys"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    schema = doc["components"]["schemas"][create["$ref"].rsplit("/", 1)[1]]
    assert schema["additionalProperties"] is False and "rpm" in schema["properties"]


def test_cli_manages_keys_through_the_gateway(gateway: GatewayProcess) -> None:
    """`sluicegate keys` creates, lists, shows, updates, rotates and revokes keys over the admin API."""
    env = {"SLUICEGATE_MASTER_KEY": MASTER_KEY, "SLUICEGATE_URL": gateway.url, "COLUMNS": "250"}
    made = cli(
        "keys",
        "create",
        "--alias",
        "from-cli",
        "--models",
        "demo",
        "--rpm",
        "7",
        "--ttl",
        "1d",
        "--json",
        env=env,
    )
    assert made.returncode == 0, made.stderr
    key = json.loads(made.stdout)
    assert key["alias"] == "from-cli" and key["rpm"] == 7 and key["expires_at"]
    assert chat(gateway, key["key"]) == "echo: hi"
    listed = cli("keys", "list", "--all", "--json", env=env)
    assert key["id"] in {k["id"] for k in json.loads(listed.stdout)["data"]}
    table = cli("keys", "list", env=env)
    assert table.returncode == 0 and key["key_prefix"] in table.stdout
    shown = json.loads(cli("keys", "show", key["id"], "--json", env=env).stdout)
    assert shown["id"] == key["id"] and "key" not in shown
    updated = json.loads(
        cli("keys", "update", key["id"], "--tpm", "99999", "--clear", "rpm", "--json", env=env).stdout
    )
    assert updated["tpm"] == 99999 and updated["rpm"] is None  # (tpm is enforced: room for the call below)
    rotated = json.loads(cli("keys", "rotate", key["id"], "--grace", "0", "--json", env=env).stdout)
    assert chat(gateway, rotated["key"]) == "echo: hi"
    revoked = cli("keys", "revoke", key["id"], "--json", env=env)
    assert json.loads(revoked.stdout)["status"] == "revoked"
    bad = cli("keys", "create", "--rpm", "-3", env=env)
    assert bad.returncode == 1 and "rpm" in bad.stderr
    nokey = cli("keys", "list", "--url", gateway.url)
    assert nokey.returncode == 2


def test_cli_spend_report_formats(gateway: GatewayProcess) -> None:
    """`sluicegate spend` prints a table, CSV and JSON of the same report."""
    env = {"SLUICEGATE_MASTER_KEY": MASTER_KEY, "SLUICEGATE_URL": gateway.url, "COLUMNS": "250"}
    as_json = cli("spend", "--by", "model", "--json", env=env)
    assert as_json.returncode == 0, as_json.stderr
    report = json.loads(as_json.stdout)
    assert report["group_by"] == "model"
    as_csv = cli("spend", "--by", "model", "--csv", env=env)
    rows = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert [r["group"] for r in rows] == [str(g["group"]) for g in report["data"]]
    table = cli("spend", "--by", "day", env=env)
    assert table.returncode == 0 and "spend by day" in table.stdout
    bad = cli("spend", "--start", "not-a-date", env=env)
    assert bad.returncode == 1 and "start" in bad.stderr


def test_cli_direct_mode_works_on_the_database(gateway: GatewayProcess, db_url: str, tmp_path: Path) -> None:
    """`keys create --direct` writes the key into the database; the running gateway honours it."""
    config = tmp_path / "direct.yaml"
    config.write_text(_config(db_url))
    made = cli("keys", "create", "--direct", "--config", str(config), "--alias", "direct", "--json")
    assert made.returncode == 0, made.stderr
    key = json.loads(made.stdout)
    assert chat(gateway, key["key"]) == "echo: hi"
    _, audit = call(gateway, "GET", f"/admin/audit?object_id={key['id']}")
    assert audit["data"][0]["actor"].startswith("cli:")
    revoked = cli("keys", "revoke", key["id"], "--direct", "--config", str(config), "--json")
    assert revoked.returncode == 0
    time.sleep(1.05)  # no Redis here: other processes see it within their 1 s TTL
    with pytest.raises(openai.AuthenticationError):
        chat(gateway, key["key"])


def test_migrate_command_is_idempotent(tmp_path: Path) -> None:
    """`sluicegate migrate` creates the schema and can run again."""
    config = tmp_path / "m.yaml"
    config.write_text(_config(f"sqlite:///{tmp_path}/m.db"))
    for _ in range(2):
        result = cli("migrate", "--config", str(config))
        assert result.returncode == 0, result.stderr
        assert "0002_key_priority" in result.stdout
    broken = tmp_path / "broken.yaml"
    broken.write_text(_config("mysql://nowhere/db"))
    result = cli("migrate", "--config", str(broken))
    assert result.returncode == 2 and "database_url" in result.stderr


def test_gateway_on_postgres_with_redis_revokes_across_workers(
    postgres_url: str, redis_url: str, tmp_path: Path
) -> None:
    """Two workers on Postgres with Redis: a key revoked through one is refused by both within a moment."""
    from tests.integration.conftest import fresh_postgres_database

    database_url = asyncio.run(fresh_postgres_database(postgres_url))
    with run_gateway(tmp_path, _config(database_url, redis_url), extra_args=("--workers", "2")) as gw:
        _, key = call(gw, "POST", "/admin/keys", {"alias": "pg"})
        workers = set()
        for _ in range(60):
            with openai.OpenAI(base_url=gw.v1, api_key=key["key"], max_retries=0) as fresh:
                raw = fresh.chat.completions.with_raw_response.create(model="demo", messages=MESSAGES)  # type: ignore[arg-type]
            workers.add(raw.headers["x-request-id"].split("-")[1])
            if len(workers) == 2:
                break
        assert len(workers) == 2  # both workers have the key cached
        assert call(gw, "DELETE", f"/admin/keys/{key['id']}")[0] == 200
        time.sleep(0.2)  # far below the 1 s TTL: only the Redis invalidation explains a refusal
        for _ in range(20):
            with (
                openai.OpenAI(base_url=gw.v1, api_key=key["key"], max_retries=0) as fresh,
                pytest.raises(openai.AuthenticationError),
            ):
                fresh.chat.completions.create(model="demo", messages=MESSAGES)  # type: ignore[arg-type]


def test_a_key_carries_a_default_priority(gateway: GatewayProcess) -> None:
    """A key stores `priority` (high, normal or low), PATCH changes it, and anything else is a 400."""
    status, key = call(gateway, "POST", "/admin/keys", {"alias": "vip", "priority": "high"})
    assert status == 201 and key["priority"] == "high"
    status, patched = call(gateway, "PATCH", f"/admin/keys/{key['id']}", {"priority": "low"})
    assert status == 200 and patched["priority"] == "low"
    status, error = call(gateway, "POST", "/admin/keys", {"alias": "bad", "priority": "urgent"})
    assert status == 400 and "priority" in json.dumps(error)
    status, plain = call(gateway, "POST", "/admin/keys", {"alias": "plain"})
    assert status == 201 and plain["priority"] is None
    assert chat(gateway, key["key"]) == "echo: hi"  # a key with a priority still calls normally
