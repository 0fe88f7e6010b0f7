"""The Gemini and Vertex fakes reject what the real services reject, so a translation bug cannot pass.

Raw HTTP against ``FakeGemini`` (Gemini API and Vertex paths, token endpoint) and
``FakeVertexAnthropic``: the wire details a gateway test would otherwise take on trust.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest

from sluicegate.upstream.gcp_auth import ServiceAccount, make_assertion, parse_credentials
from tests.fakes import Error, Reply, ToolCalls
from tests.fakes.fake_gemini import FakeGemini
from tests.fakes.fake_vertex_anthropic import FakeVertexAnthropic

KEY = "AIza-fake-test"
MODEL_PATH = "/v1beta/models/gemini-2.5-flash"
HELLO = {"contents": [{"role": "user", "parts": [{"text": "Hello"}]}]}


def post(url: str, body: Any, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method="POST", headers=headers or {})
    request.add_header("content-type", request.headers.get("Content-type", "application/json"))
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, {k.lower(): v for k, v in response.headers.items()}, response.read()
    except urllib.error.HTTPError as error:
        return error.code, {k.lower(): v for k, v in error.headers.items()}, error.read()


@pytest.fixture(scope="module")
def gemini() -> Iterator[FakeGemini]:
    with FakeGemini(api_key=KEY) as fake:
        yield fake


@pytest.fixture(scope="module")
def claude() -> Iterator[FakeVertexAnthropic]:
    with FakeVertexAnthropic() as fake:
        yield fake


def generate(fake: FakeGemini, body: Any, action: str = "generateContent") -> tuple[int, Any]:
    status, _, raw = post(f"{fake.base_url}{MODEL_PATH}:{action}", body, {"x-goog-api-key": KEY})
    return status, json.loads(raw) if raw.startswith(b"{") else raw


def vertex_url(fake: FakeGemini | FakeVertexAnthropic, publisher: str, action: str) -> str:
    location = f"{fake.base_url}/v1/projects/{fake.project}/locations/us-east5"
    return f"{location}/publishers/{publisher}/models/m:{action}"


def assertion_for(fake: FakeGemini | FakeVertexAnthropic) -> str:
    credentials = parse_credentials(fake.credentials_json)
    assert isinstance(credentials, ServiceAccount)
    return make_assertion(credentials, time.time())


def token_for(fake: FakeGemini | FakeVertexAnthropic) -> str:
    assertion = assertion_for(fake)
    form = urlencode({"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": assertion})
    status, _, raw = post(
        fake.token_uri, form.encode(), {"content-type": "application/x-www-form-urlencoded"}
    )
    assert status == 200, raw
    token: str = json.loads(raw)["access_token"]
    return token


def test_reply_has_candidates_usage_and_model_version(gemini: FakeGemini) -> None:
    """A generateContent reply carries the text, finishReason STOP, usageMetadata and modelVersion."""
    gemini.enqueue(Reply("Bonjour", prompt_tokens=3, completion_tokens=1, cached_tokens=2))
    status, body = generate(gemini, HELLO)
    assert status == 200
    assert body["candidates"][0]["content"] == {"parts": [{"text": "Bonjour"}], "role": "model"}
    assert body["candidates"][0]["finishReason"] == "STOP"
    usage = body["usageMetadata"]
    assert (usage["promptTokenCount"], usage["candidatesTokenCount"], usage["cachedContentTokenCount"]) == (
        3,
        1,
        2,
    )
    assert body["modelVersion"] == "gemini-2.5-flash"


def test_stream_is_crlf_framed_sse_with_finish_and_usage_last(gemini: FakeGemini) -> None:
    """streamGenerateContent?alt=sse sends CRLF-terminated data events; only the last has finishReason."""
    gemini.enqueue(ToolCalls([("f", {"a": 1})], text="one two"))
    status, raw = generate(gemini, HELLO, "streamGenerateContent?alt=sse")
    assert status == 200 and isinstance(raw, bytes)
    events = [json.loads(chunk[len(b"data: ") :]) for chunk in raw.split(b"\r\n\r\n") if chunk]
    assert [e["candidates"][0].get("finishReason") for e in events] == [None, None, "STOP"]
    assert events[-1]["candidates"][0]["content"]["parts"][0]["functionCall"] == {
        "name": "f",
        "args": {"a": 1},
    }
    assert "candidatesTokenCount" in events[-1]["usageMetadata"]
    assert "candidatesTokenCount" not in events[0]["usageMetadata"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"messages": []}, 'Unknown name "messages"'),
        ({"contents": []}, "contents is not specified"),
        ({"contents": [{"role": "assistant", "parts": [{"text": "x"}]}]}, "valid role: user, model"),
        ({"contents": [{"role": "user", "parts": []}]}, "parts must not be empty"),
        ({"contents": [{"role": "user", "parts": [{"text": ""}]}]}, "empty text parameter"),
        ({"contents": [{"role": "user", "parts": [{"text": "a", "inlineData": {}}]}]}, "oneof field 'data'"),
        (
            {
                **HELLO,
                "tools": [
                    {
                        "functionDeclarations": [
                            {
                                "name": "f",
                                "parameters": {
                                    "type": "object",
                                    "additionalProperties": False,
                                    "properties": {},
                                },
                            }
                        ]
                    }
                ],
            },
            'Unknown name "additionalProperties"',
        ),
        (
            {**HELLO, "tools": [{"functionDeclarations": [{"name": "f", "parameters": {"type": "OBJECT"}}]}]},
            "should be non-empty for OBJECT type",
        ),
        (
            {
                "contents": [
                    {"role": "user", "parts": [{"text": "hi"}]},
                    {"role": "model", "parts": [{"functionCall": {"name": "f", "args": {}}}]},
                    {"role": "user", "parts": [{"functionResponse": {"response": {"r": 1}}}]},
                ]
            },
            "Name cannot be empty",
        ),
        (
            {
                "contents": [
                    {"role": "user", "parts": [{"text": "hi"}]},
                    {"role": "model", "parts": [{"functionCall": {"name": "f", "args": {}}}]},
                    {"role": "user", "parts": [{"functionResponse": {"name": "f", "response": "sunny"}}]},
                ]
            },
            "google.protobuf.Struct",
        ),
        (
            {
                "contents": [
                    {"role": "user", "parts": [{"text": "hi"}]},
                    {
                        "role": "model",
                        "parts": [{"functionCall": {"name": "f"}}, {"functionCall": {"name": "g"}}],
                    },
                    {"role": "user", "parts": [{"functionResponse": {"name": "f", "response": {}}}]},
                ]
            },
            "number of function response parts is equal",
        ),
        ({**HELLO, "generationConfig": {"temperature": 3}}, "temperature must be between 0 and 2"),
        ({**HELLO, "generationConfig": {"max_tokens": 3}}, 'Unknown name "max_tokens"'),
    ],
)
def test_invalid_requests_get_googles_400(gemini: FakeGemini, body: dict[str, Any], message: str) -> None:
    """Each mistake a translator can make gets a 400 INVALID_ARGUMENT in Google's error envelope."""
    status, reply = generate(gemini, body)
    assert status == 400
    assert reply["error"]["status"] == "INVALID_ARGUMENT" and reply["error"]["code"] == 400
    assert message in reply["error"]["message"]


def test_missing_and_wrong_keys_are_refused_like_the_gemini_api(gemini: FakeGemini) -> None:
    """No key is 403 PERMISSION_DENIED; a wrong key is 400 with ErrorInfo reason API_KEY_INVALID."""
    status, _, raw = post(f"{gemini.base_url}{MODEL_PATH}:generateContent", HELLO)
    assert (status, json.loads(raw)["error"]["status"]) == (403, "PERMISSION_DENIED")
    status, _, raw = post(f"{gemini.base_url}{MODEL_PATH}:generateContent", HELLO, {"x-goog-api-key": "bad"})
    assert status == 400 and json.loads(raw)["error"]["details"][0]["reason"] == "API_KEY_INVALID"


def test_vertex_paths_need_an_issued_bearer_and_a_role_on_every_content(gemini: FakeGemini) -> None:
    """Vertex calls need a token from the fake endpoint (else 401) and reject contents without a role."""
    url = vertex_url(gemini, "google", "generateContent")
    status, _, raw = post(url, HELLO, {"authorization": "Bearer ya29.made-up"})
    assert (status, json.loads(raw)["error"]["status"]) == (401, "UNAUTHENTICATED")
    bearer = {"authorization": f"Bearer {token_for(gemini)}"}
    status, _, raw = post(url, {"contents": [{"parts": [{"text": "hi"}]}]}, bearer)
    assert status == 400 and "valid role" in json.loads(raw)["error"]["message"]
    status, _, _ = post(url, HELLO, bearer)
    assert status == 200


def test_token_endpoint_verifies_the_jwt_signature(gemini: FakeGemini) -> None:
    """An assertion whose signature does not verify gets invalid_grant, as oauth2.googleapis.com answers."""
    assertion = assertion_for(gemini)
    tampered = assertion[:-6] + ("AAAAAA" if not assertion.endswith("AAAAAA") else "BBBBBB")
    form = urlencode({"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": tampered})
    status, _, raw = post(
        gemini.token_uri, form.encode(), {"content-type": "application/x-www-form-urlencoded"}
    )
    assert (status, json.loads(raw)) == (
        400,
        {"error": "invalid_grant", "error_description": "Invalid JWT Signature."},
    )


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"model": "claude", "anthropic_version": "vertex-2023-10-16"}, "model: Extra inputs"),
        (
            {"max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]},
            "anthropic_version: Field required",
        ),
        (
            {
                "anthropic_version": "2023-06-01",
                "max_tokens": 5,
                "messages": [{"role": "user", "content": "hi"}],
            },
            "anthropic_version: Input should be 'vertex-2023-10-16'",
        ),
    ],
)
def test_vertex_claude_checks_the_envelope(
    claude: FakeVertexAnthropic, body: dict[str, Any], message: str
) -> None:
    """Claude on Vertex wants anthropic_version vertex-2023-10-16 and no model in the body."""
    url = vertex_url(claude, "anthropic", "rawPredict")
    status, _, raw = post(url, body, {"authorization": f"Bearer {token_for(claude)}"})
    assert status == 400
    reply = json.loads(raw)
    assert reply["type"] == "error" and message in reply["error"]["message"]


def test_vertex_claude_platform_errors_use_googles_envelope(claude: FakeVertexAnthropic) -> None:
    """A scripted 429 from Claude on Vertex comes in Google's envelope; a 529 in Anthropic's."""
    url = vertex_url(claude, "anthropic", "rawPredict")
    body = {
        "anthropic_version": "vertex-2023-10-16",
        "max_tokens": 5,
        "messages": [{"role": "user", "content": "hi"}],
    }
    bearer = {"authorization": f"Bearer {token_for(claude)}"}
    claude.enqueue(Error(429), Error(529))
    status, _, raw = post(url, body, bearer)
    assert (status, json.loads(raw)["error"]["status"]) == (429, "RESOURCE_EXHAUSTED")
    status, _, raw = post(url, body, bearer)
    assert (status, json.loads(raw)["error"]["type"]) == (529, "overloaded_error")
