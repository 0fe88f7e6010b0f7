"""BedrockAdapter on recorded fixtures: OpenAI requests out, Converse replies and event streams back in."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import unquote

import orjson
import pytest
import yarl

from sluicegate.config.loader import parse_config
from sluicegate.config.schema import ModelEntry
from sluicegate.errors import ConfigError, InvalidRequestError, UpstreamProtocolError, UpstreamStatusError
from sluicegate.providers.base import CHAT, EMBEDDINGS, JSON_SCHEMA, STREAM, TOOLS, VISION
from sluicegate.providers.bedrock import BedrockAdapter, BedrockStream, tool_use_id
from sluicegate.types import ChatRequest, UpstreamRequest
from sluicegate.upstream import sigv4
from sluicegate.upstream.eventstream import EventStreamDecoder
from sluicegate.upstream.sse import SSEEvent
from tests.fakes import aws_eventstream as es

from ._helpers import chat_request, decode_frames, feed_stream, load_fixture, reply, sent_body

HELLO = [{"role": "user", "content": "Hello"}]
HELLO_SENT = [{"role": "user", "content": [{"text": "Hello"}]}]
PROFILE = "us.anthropic.claude-3-7-sonnet-20250219-v1:0"
ARN = "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/a1b2c3d4e5f6"
CREDENTIALS = {
    "aws_region": "us-east-1",
    "aws_access_key_id": "AKIDTEST",
    "aws_secret_access_key": "secret/test+key",
}
AWS_ENV = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_BEARER_TOKEN_BEDROCK",
)


@pytest.fixture(autouse=True)
def no_aws_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests see only the AWS settings they set themselves."""
    for name in AWS_ENV:
        monkeypatch.delenv(name, raising=False)


def load(name: str) -> Any:
    return load_fixture("bedrock", name)


def make_entry(**fields: Any) -> ModelEntry:
    values: dict[str, Any] = {
        "name": "claude-bedrock",
        "provider": "bedrock",
        "model": PROFILE,
        **CREDENTIALS,
    }
    values.update(fields)
    return ModelEntry(**{k: v for k, v in values.items() if v is not None})


def make_adapter(**fields: Any) -> BedrockAdapter:
    return BedrockAdapter(make_entry(**fields))


def chat(body: dict[str, Any], *, include_usage: bool = False) -> ChatRequest:
    return chat_request(body, "claude-bedrock", include_usage=include_usage)


def sent(body: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """The JSON body the adapter would send to Bedrock for this OpenAI body."""
    return sent_body(make_adapter(**fields), chat(body))


def encode_frames(frames: list[list[Any]]) -> bytes:
    return b"".join(es.event(kind, payload) for kind, payload in frames)


def run_stream(
    raw: bytes, request: dict[str, Any] | None = None, *, include_usage: bool = False
) -> tuple[BedrockStream, list[bytes]]:
    """Feed an event-stream body through the decoder and translator in awkward 29-byte reads, then finish."""
    body = request or {"messages": HELLO, "stream": True}
    translator = make_adapter().stream_translator(chat(body, include_usage=include_usage))
    assert isinstance(translator, BedrockStream)
    return translator, feed_stream(translator, EventStreamDecoder(), raw, read=29, finish=True)


# --- endpoint, URL encoding, headers -----------------------------------------------------------


@pytest.mark.parametrize(
    ("model_id", "path"),
    [
        ("anthropic.claude-3-haiku-20240307-v1:0", "/model/anthropic.claude-3-haiku-20240307-v1:0/converse"),
        (PROFILE, "/model/us.anthropic.claude-3-7-sonnet-20250219-v1:0/converse"),
        (
            "global.anthropic.claude-sonnet-4-5-20250929-v1:0",
            "/model/global.anthropic.claude-sonnet-4-5-20250929-v1:0/converse",
        ),
        (
            ARN,
            "/model/arn:aws:bedrock:us-east-1:123456789012:application-inference-profile%2Fa1b2c3d4e5f6/converse",
        ),
    ],
)
def test_model_id_profile_or_arn_is_one_label_of_the_converse_url(model_id: str, path: str) -> None:
    """Foundation ids, cross-region profile ids and ARNs form one path label; `/` stays %2F."""
    adapter = make_adapter(model=model_id)
    url = yarl.URL(adapter.url)
    assert adapter.url == f"https://bedrock-runtime.us-east-1.amazonaws.com{path}"
    assert url.raw_path == path and unquote(url.raw_path.split("/")[2]) == model_id
    assert adapter.stream_url == adapter.url.removesuffix("/converse") + "/converse-stream"


def test_url_is_sent_exactly_as_written_so_the_signed_path_is_the_wire_path() -> None:
    """The adapter's URLs are a fixed point of aiohttp's URL normalisation: nothing changes after signing."""
    for model_id in (PROFILE, ARN, "weird id+/é"):
        adapter = make_adapter(model=model_id)
        for url in (adapter.url, adapter.stream_url):
            assert str(yarl.URL(url)) == url
            assert unquote(yarl.URL(url).raw_path.split("/")[2]) == model_id


def test_stream_flag_picks_converse_stream_endpoint() -> None:
    """`stream: true` goes to /converse-stream, otherwise /converse; the body carries no stream flag."""
    adapter = make_adapter(api_base="http://127.0.0.1:9999/")
    streamed = adapter.build_request(chat({"messages": HELLO, "stream": True}))
    assert streamed.url == f"http://127.0.0.1:9999/model/{PROFILE}/converse-stream"
    assert orjson.loads(streamed.body) == {"messages": HELLO_SENT}
    assert (
        adapter.build_request(chat({"messages": HELLO})).url
        == f"http://127.0.0.1:9999/model/{PROFILE}/converse"
    )


def test_region_picks_the_runtime_host() -> None:
    """The host is bedrock-runtime.<aws_region>.amazonaws.com."""
    assert make_adapter(aws_region="ap-southeast-2").url.startswith(
        "https://bedrock-runtime.ap-southeast-2.amazonaws.com/model/"
    )


def test_request_headers_are_prebuilt_with_host_and_entry_headers() -> None:
    """Headers are built once: JSON content type, the exact Host that is signed, the entry's own headers."""
    adapter = make_adapter(api_base="http://127.0.0.1:8123", headers={"X-Team": "a"})
    upstream = adapter.build_request(chat({"messages": HELLO}))
    assert upstream.headers == {
        "content-type": "application/json",
        "accept-encoding": "identity",
        "host": "127.0.0.1:8123",
        "X-Team": "a",
    }
    assert adapter.build_request(chat({"messages": HELLO})).headers is upstream.headers


def _sign(adapter: BedrockAdapter, request: UpstreamRequest) -> UpstreamRequest:
    return asyncio.run(adapter.sign(request, None))


def test_sign_adds_a_sigv4_authorization_for_service_bedrock() -> None:
    """sign() adds x-amz-date and an Authorization scoped to <date>/<region>/bedrock, over the sent path."""
    adapter = make_adapter(aws_region="eu-west-3", aws_session_token="TOKEN123")
    upstream = adapter.build_request(chat({"messages": HELLO}))
    signed = _sign(adapter, upstream)
    assert signed.url == upstream.url and signed.body == upstream.body
    assert "authorization" not in upstream.headers  # the shared prebuilt dict is never modified
    headers = signed.headers
    date = headers["x-amz-date"][:8]
    assert headers["x-amz-security-token"] == "TOKEN123"
    auth = headers["authorization"]
    assert auth.startswith(f"AWS4-HMAC-SHA256 Credential=AKIDTEST/{date}/eu-west-3/bedrock/aws4_request, ")
    assert "SignedHeaders=content-type;host;x-amz-date;x-amz-security-token, " in auth
    path = yarl.URL(upstream.url).raw_path
    to_sign = [
        (k, v)
        for k, v in headers.items()
        if k in ("content-type", "host", "x-amz-date", "x-amz-security-token")
    ]
    canonical = sigv4.canonical_request("POST", path, "", to_sign, sigv4.payload_hash(upstream.body))
    scope = sigv4.credential_scope(date, "eu-west-3", "bedrock")
    key = sigv4.signing_key("secret/test+key", date, "eu-west-3", "bedrock")
    assert auth.endswith(
        "Signature=" + sigv4.signature(key, sigv4.string_to_sign(headers["x-amz-date"], scope, canonical))
    )


def test_bedrock_api_key_is_sent_as_bearer_without_signing() -> None:
    """With api_key (a Bedrock API key) and no AWS keys the request carries a bearer token, unsigned."""
    adapter = make_adapter(aws_access_key_id=None, aws_secret_access_key=None, api_key="bedrock-api-key-1")
    upstream = adapter.build_request(chat({"messages": HELLO}))
    assert upstream.headers["authorization"] == "Bearer bedrock-api-key-1"
    assert _sign(adapter, upstream) is upstream


def test_capabilities_and_stream_decoder() -> None:
    """Bedrock declares chat, streams, tools, images and JSON schema, no embeddings; decodes event streams."""
    adapter = make_adapter()
    assert {CHAT, STREAM, TOOLS, VISION, JSON_SCHEMA} <= adapter.capabilities
    assert EMBEDDINGS not in adapter.capabilities
    assert isinstance(adapter.stream_decoder(), EventStreamDecoder)
    assert adapter.needs_signing


# --- credentials and config checks -------------------------------------------------------------


def test_credentials_and_region_default_to_the_aws_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without entry fields the adapter signs with AWS_ACCESS_KEY_ID/SECRET/SESSION_TOKEN in AWS_REGION."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDENV")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "envsecret")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "envtoken")
    monkeypatch.setenv("AWS_REGION", "eu-central-1")
    adapter = make_adapter(aws_region=None, aws_access_key_id=None, aws_secret_access_key=None)
    assert adapter.url.startswith("https://bedrock-runtime.eu-central-1.amazonaws.com/")
    headers = _sign(adapter, adapter.build_request(chat({"messages": HELLO}))).headers
    assert (
        "Credential=AKIDENV/" in headers["authorization"]
        and "/eu-central-1/bedrock/" in headers["authorization"]
    )
    assert headers["x-amz-security-token"] == "envtoken"


def test_aws_default_region_is_the_last_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    """AWS_DEFAULT_REGION is used when neither aws_region nor AWS_REGION is set."""
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-west-2")
    assert "us-west-2" in make_adapter(aws_region=None).url
    monkeypatch.setenv("AWS_REGION", "us-east-2")
    assert "us-east-2" in make_adapter(aws_region=None).url


def test_environment_session_token_is_not_mixed_with_entry_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """A session token from the environment belongs to the environment's keys, not to keys in the entry."""
    monkeypatch.setenv("AWS_SESSION_TOKEN", "envtoken")
    adapter = make_adapter()
    assert (
        "x-amz-security-token" not in _sign(adapter, adapter.build_request(chat({"messages": HELLO}))).headers
    )


@pytest.mark.parametrize(
    ("fields", "env", "message"),
    [
        ({"aws_region": None}, {}, "models[3].aws_region: required for provider bedrock"),
        ({"aws_region": "US East"}, {}, "models[3].aws_region: 'US East' is not an AWS region name"),
        (
            {"aws_access_key_id": None, "aws_secret_access_key": None},
            {},
            "models[3].aws_access_key_id: AWS credentials are required",
        ),
        (
            {"aws_secret_access_key": None},
            {},
            "models[3].aws_secret_access_key: required when aws_access_key_id",
        ),
        ({"aws_access_key_id": None}, {}, "models[3].aws_access_key_id: required when aws_secret_access_key"),
        (
            {"aws_access_key_id": None, "aws_secret_access_key": None},
            {"AWS_ACCESS_KEY_ID": "AKID"},
            "models[3].aws_secret_access_key: AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not",
        ),
    ],
)
def test_check_quotes_the_field_when_region_or_credentials_are_missing(
    monkeypatch: pytest.MonkeyPatch, fields: dict[str, Any], env: dict[str, str], message: str
) -> None:
    """Config validation names the missing or bad field with its path, and never prints a secret."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as info:
        BedrockAdapter.check(make_entry(**fields), "models[3]")
    assert str(info.value).startswith(message)
    assert "secret/test+key" not in str(info.value)


def test_check_accepts_a_bearer_token_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """AWS_BEARER_TOKEN_BEDROCK is enough credentials when no AWS keys are configured."""
    monkeypatch.setenv("AWS_BEARER_TOKEN_BEDROCK", "envbearer")
    entry = make_entry(aws_access_key_id=None, aws_secret_access_key=None)
    BedrockAdapter.check(entry, "models[0]")
    assert BedrockAdapter(entry).headers["authorization"] == "Bearer envbearer"


# --- request translation -----------------------------------------------------------------------


def test_system_developer_merging_and_inference_config() -> None:
    """System messages -> system blocks; same-role turns merge, empty ones vanish; inferenceConfig is set."""
    case = load("request_openai_conversation.json")
    assert sent(case["openai"]) == case["bedrock"]


def test_data_url_images_become_image_bytes_with_their_format() -> None:
    """png, jpeg, webp and gif data URLs become image blocks with base64 bytes and the format name."""
    case = load("request_openai_images.json")
    assert sent(case["openai"]) == case["bedrock"]


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("https://example.com/cat.png", "unsupported_image_url"),
        ("data:image/bmp;base64,Qk0=", None),
        ("data:image/png,notbase64", None),
        ("ftp://example.com/cat.png", None),
    ],
)
def test_images_bedrock_cannot_take_get_a_400_naming_the_part(url: str, code: str | None) -> None:
    """http(s) URLs (never fetched), unsupported formats and non-base64 data URLs get a 400 naming the url."""
    body = {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}]}
    with pytest.raises(InvalidRequestError) as info:
        sent(body)
    assert info.value.param == "messages[0].content[0].image_url.url"
    assert info.value.http_status == 400
    if code:
        assert info.value.code == code


def test_tools_and_named_choice_translate_to_tool_config() -> None:
    """Tools become toolSpecs (default object schema, strict kept, empty description left out)."""
    case = load("request_openai_tools.json")
    assert sent(case["openai"]) == case["bedrock"]


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("auto", {"auto": {}}),
        ("required", {"any": {}}),
        ({"type": "function", "function": {"name": "f"}}, {"tool": {"name": "f"}}),
    ],
)
def test_tool_choice_variants(choice: Any, expected: dict[str, Any]) -> None:
    """auto -> auto, required -> any, a named function -> tool."""
    tools = [{"type": "function", "function": {"name": "f"}}]
    assert (
        sent({"messages": HELLO, "tools": tools, "tool_choice": choice})["toolConfig"]["toolChoice"]
        == expected
    )


def test_tool_choice_none_leaves_the_tools_out() -> None:
    """tool_choice none has no Converse spelling: the tools are not offered at all."""
    tools = [{"type": "function", "function": {"name": "f"}}]
    assert sent({"messages": HELLO, "tools": tools, "tool_choice": "none"}) == {"messages": HELLO_SENT}


def _tool_history() -> list[dict[str, Any]]:
    call = {"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": '{"q": "x"}'}}
    return [
        {"role": "user", "content": "Find x"},
        {"role": "assistant", "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_1", "content": "found"},
    ]


def test_tool_choice_none_with_tool_history_keeps_tools_without_a_choice() -> None:
    """With toolUse/toolResult history, toolConfig must stay: tools are kept and no toolChoice is sent."""
    tools = [{"type": "function", "function": {"name": "lookup"}}]
    body = sent({"messages": _tool_history(), "tools": tools, "tool_choice": "none"})
    assert body["toolConfig"] == {
        "tools": [
            {"toolSpec": {"name": "lookup", "inputSchema": {"json": {"type": "object", "properties": {}}}}}
        ]
    }


def test_tool_history_without_tools_declares_the_tools_it_used() -> None:
    """A conversation with tool calls but no `tools` still sends a toolConfig naming the tools used."""
    body = sent({"messages": _tool_history()})
    assert body["toolConfig"] == {
        "tools": [{"toolSpec": {"name": "lookup", "inputSchema": {"json": {"type": "object"}}}}]
    }


def test_tool_results_merge_into_one_user_turn_results_first() -> None:
    """Consecutive tool messages (and user text between them) become one user turn, toolResults first."""
    case = load("request_openai_tool_results.json")
    assert sent(case["openai"]) == case["bedrock"]


def test_tool_ids_bedrock_would_reject_are_mapped_the_same_way_on_both_sides() -> None:
    """An id outside [a-zA-Z0-9_-]{1,64} is rewritten deterministically, distinct ids stay distinct."""
    assert tool_use_id("call_abc-1") == "call_abc-1"
    long_id = "x" * 80
    assert len(tool_use_id(long_id)) <= 64 and tool_use_id(long_id) == tool_use_id(long_id)
    assert tool_use_id("a:b") != tool_use_id("a/b")
    assert all(ch.isalnum() or ch in "_-" for ch in tool_use_id("toolu_01:rome/x"))


def test_empty_tool_result_is_sent_as_empty_content() -> None:
    """An empty tool output becomes a toolResult with no content blocks (never a blank text block)."""
    messages = _tool_history()
    messages[2]["content"] = ""
    assert sent({"messages": messages})["messages"][2]["content"] == [
        {"toolResult": {"toolUseId": "call_1", "content": []}}
    ]


def test_invalid_tool_call_arguments_get_400_naming_the_param() -> None:
    """Assistant tool_call arguments that are not a JSON object get a 400 naming the exact path."""
    messages = _tool_history()
    messages[1]["tool_calls"][0]["function"]["arguments"] = "[1, 2]"
    with pytest.raises(InvalidRequestError) as info:
        sent({"messages": messages})
    assert info.value.param == "messages[1].tool_calls[0].function.arguments"


def test_json_schema_is_served_by_a_forced_tool() -> None:
    """response_format json_schema becomes one forced tool whose input schema is the requested schema."""
    case = load("request_openai_json_schema.json")
    assert sent(case["openai"]) == case["bedrock"]


def test_json_object_mode_forces_an_object_tool() -> None:
    """response_format json_object forces the json_response tool with an open object schema."""
    config = sent({"messages": HELLO, "response_format": {"type": "json_object"}})["toolConfig"]
    assert config["toolChoice"] == {"tool": {"name": "json_response"}}
    assert config["tools"][0]["toolSpec"]["inputSchema"] == {"json": {"type": "object"}}


def test_json_schema_together_with_tools_is_refused_or_dropped() -> None:
    """A JSON schema cannot be forced while other tools are offered: 400, or dropped with drop_params."""
    body = {
        "messages": HELLO,
        "tools": [{"type": "function", "function": {"name": "f"}}],
        "response_format": {"type": "json_object"},
    }
    with pytest.raises(InvalidRequestError) as info:
        sent(body)
    assert info.value.param == "response_format"
    assert [t["toolSpec"]["name"] for t in sent(body, drop_params=True)["toolConfig"]["tools"]] == ["f"]


def test_null_and_absent_parameters_are_not_sent() -> None:
    """Parameters the caller left out or set to null never appear in the Converse body."""
    absent = (
        "temperature",
        "top_p",
        "stop",
        "tools",
        "tool_choice",
        "user",
        "seed",
        "n",
        "max_tokens",
        "response_format",
    )
    assert sent({"messages": HELLO, **dict.fromkeys(absent)}) == {"messages": HELLO_SENT}


def test_max_tokens_falls_back_to_the_entry_default_only() -> None:
    """Without max tokens from the caller maxTokens is default_max_tokens if set, else left to the model."""
    assert "inferenceConfig" not in sent({"messages": HELLO})
    assert sent({"messages": HELLO}, default_max_tokens=1024)["inferenceConfig"] == {"maxTokens": 1024}
    assert sent({"messages": HELLO, "max_tokens": 7}, default_max_tokens=1024)["inferenceConfig"] == {
        "maxTokens": 7
    }


def test_native_converse_fields_pass_through() -> None:
    """Converse members sent as extra body fields (guardrails, model fields) are forwarded unchanged."""
    native = {
        "additionalModelRequestFields": {"top_k": 200},
        "guardrailConfig": {"guardrailIdentifier": "gr-1", "guardrailVersion": "1"},
        "performanceConfig": {"latency": "optimized"},
    }
    assert sent({"messages": HELLO, **native}) == {"messages": HELLO_SENT, **native}


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("n", 2),
        ("logprobs", True),
        ("top_logprobs", 3),
        ("logit_bias", {"50256": -100}),
        ("frequency_penalty", 0.5),
        ("presence_penalty", -0.5),
        ("seed", 0),
        ("reasoning_effort", "high"),
    ],
)
def test_unsupported_parameter_gets_400_naming_it(name: str, value: Any) -> None:
    """A parameter Converse cannot honour gets a 400 unsupported_parameter naming it."""
    with pytest.raises(InvalidRequestError) as info:
        sent({"messages": HELLO, name: value})
    assert (info.value.http_status, info.value.param, info.value.code) == (400, name, "unsupported_parameter")


def test_parallel_tool_calls_false_is_refused_or_dropped() -> None:
    """parallel_tool_calls false cannot be enforced on Converse: 400 naming it, or dropped (drop_params)."""
    body = {
        "messages": HELLO,
        "tools": [{"type": "function", "function": {"name": "f"}}],
        "parallel_tool_calls": False,
    }
    with pytest.raises(InvalidRequestError) as info:
        sent(body)
    assert info.value.param == "parallel_tool_calls"
    assert "toolChoice" not in sent(body, drop_params=True)["toolConfig"]


def test_unsupported_parameters_are_dropped_with_drop_params() -> None:
    """With drop_params the unsupported parameters are silently left out; neutral values never refuse."""
    body = {"messages": HELLO, "n": 3, "logprobs": True, "seed": 7, "frequency_penalty": 1.0}
    assert sent(body, drop_params=True) == {"messages": HELLO_SENT}
    assert sent({"messages": HELLO, "n": 1, "logprobs": False, "presence_penalty": 0}) == {
        "messages": HELLO_SENT
    }


def test_request_body_is_not_modified() -> None:
    """Translation leaves the caller's body untouched (a retry on another deployment reuses it)."""
    case = load("request_openai_tool_results.json")
    before = orjson.dumps(case["openai"])
    sent(case["openai"])
    assert orjson.dumps(case["openai"]) == before


# --- replies -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["response_converse_text.json", "response_converse_tool_use.json"])
def test_converse_reply_becomes_chat_completion(name: str) -> None:
    """Text and tool-use replies become chat.completion objects; usage includes cache reads and writes."""
    case = load(name)
    adapter = make_adapter()
    response = adapter.parse_response(
        chat({"messages": HELLO}), reply(case["bedrock"], headers=case["headers"])
    )
    body = orjson.loads(response.content)
    assert isinstance(body.pop("created"), int)
    assert body == case["openai"]
    assert response.finish_reason == case["openai"]["choices"][0]["finish_reason"]
    assert (
        response.usage is not None and response.usage.total_tokens == case["openai"]["usage"]["total_tokens"]
    )


@pytest.mark.parametrize(
    ("stop_reason", "finish"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("model_context_window_exceeded", "length"),
        ("guardrail_intervened", "content_filter"),
        ("content_filtered", "content_filter"),
        ("something_new", "stop"),
    ],
)
def test_stop_reasons_map_to_finish_reasons(stop_reason: str, finish: str) -> None:
    """Each Bedrock stopReason maps to its OpenAI finish_reason (reference §8)."""
    body = {
        "output": {"message": {"role": "assistant", "content": [{"text": "x"}]}},
        "stopReason": stop_reason,
    }
    assert make_adapter().parse_response(chat({"messages": HELLO}), reply(body)).finish_reason == finish


@pytest.mark.parametrize("stop_reason", ["malformed_model_output", "malformed_tool_use"])
def test_malformed_output_is_a_provider_failure(stop_reason: str) -> None:
    """A malformed_* stopReason is reported as a retryable provider failure (502), not as a reply."""
    body = {"output": {"message": {"role": "assistant", "content": []}}, "stopReason": stop_reason}
    with pytest.raises(UpstreamStatusError) as info:
        make_adapter().parse_response(chat({"messages": HELLO}), reply(body))
    assert (info.value.http_status, info.value.code, info.value.is_retryable) == (502, stop_reason, True)


def test_forced_json_tool_reply_is_returned_as_message_text() -> None:
    """The forced JSON tool's input comes back as the message content with finish_reason stop."""
    request = chat(
        {
            "messages": HELLO,
            "response_format": load("request_openai_json_schema.json")["openai"]["response_format"],
        }
    )
    body = {
        "output": {
            "message": {
                "role": "assistant",
                "content": [{"toolUse": {"toolUseId": "t1", "name": "city", "input": {"name": "Paris"}}}],
            }
        },
        "stopReason": "tool_use",
        "usage": {"inputTokens": 1, "outputTokens": 2, "totalTokens": 3},
    }
    result = orjson.loads(make_adapter().parse_response(request, reply(body)).content)
    assert result["choices"][0]["message"] == {
        "role": "assistant",
        "content": '{"name":"Paris"}',
        "refusal": None,
    }
    assert result["choices"][0]["finish_reason"] == "stop"


@pytest.mark.parametrize("raw", [b"<html>oops</html>", b'{"output": {}}', b"[]"])
def test_reply_that_is_not_a_converse_response_is_a_protocol_error(raw: bytes) -> None:
    """A 200 body that is not JSON, or has no output.message.content, is an UpstreamProtocolError."""
    with pytest.raises(UpstreamProtocolError):
        make_adapter().parse_response(chat({"messages": HELLO}), reply(raw))


# --- streams -----------------------------------------------------------------------------------


def test_text_stream_with_usage_after_message_stop() -> None:
    """Text deltas become content chunks; reasoning is dropped; usage from `metadata` is the last chunk."""
    case = load("stream_text.json")
    translator, frames = run_stream(encode_frames(case["frames"]), include_usage=True)
    assert decode_frames(frames, minted_id=True) == case["expected"]
    assert translator.usage is not None
    assert (translator.usage.prompt_tokens, translator.usage.cached_tokens) == (120, 100)


def test_tool_stream_mints_openai_indexes_in_order_of_appearance() -> None:
    """toolUse blocks become tool_calls with indexes 0, 1 (not the block index); input fragments follow."""
    case = load("stream_tools.json")
    _, frames = run_stream(encode_frames(case["frames"]))
    assert decode_frames(frames, minted_id=True) == case["expected"]


def test_forced_json_tool_streams_as_content() -> None:
    """In JSON mode the forced tool's input fragments stream as content and the finish reason is stop."""
    frames = [
        ["messageStart", {"role": "assistant"}],
        [
            "contentBlockStart",
            {"contentBlockIndex": 0, "start": {"toolUse": {"toolUseId": "t1", "name": "json_response"}}},
        ],
        ["contentBlockDelta", {"contentBlockIndex": 0, "delta": {"toolUse": {"input": '{"a"'}}}],
        ["contentBlockDelta", {"contentBlockIndex": 0, "delta": {"toolUse": {"input": ": 1}"}}}],
        ["messageStop", {"stopReason": "tool_use"}],
        ["metadata", {"usage": {"inputTokens": 1, "outputTokens": 1, "totalTokens": 2}}],
    ]
    body = {"messages": HELLO, "stream": True, "response_format": {"type": "json_object"}}
    chunks = decode_frames(run_stream(encode_frames(frames), body)[1], minted_id=True)
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks[:-1]) == '{"a": 1}'
    assert [c["choices"][0]["finish_reason"] for c in chunks[:-1]][-1] == "stop"
    assert all("tool_calls" not in c["choices"][0]["delta"] for c in chunks[:-1])


def test_stream_ending_after_message_stop_without_metadata_still_closes() -> None:
    """If the body ends after messageStop with no metadata, finish() sends the closing frames."""
    frames = [
        ["messageStart", {"role": "assistant"}],
        ["contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Hi"}}],
        ["messageStop", {"stopReason": "max_tokens"}],
    ]
    chunks = decode_frames(run_stream(encode_frames(frames))[1], minted_id=True)
    assert chunks[-1] == "[DONE]"
    assert chunks[-2]["choices"][0]["finish_reason"] == "length"


def test_stream_cut_before_message_stop_is_a_protocol_error() -> None:
    """A stream that ends before messageStop raises instead of looking complete."""
    frames = [
        ["messageStart", {"role": "assistant"}],
        ["contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Hi"}}],
    ]
    with pytest.raises(UpstreamProtocolError):
        run_stream(encode_frames(frames))


def test_stream_cut_inside_a_frame_is_a_protocol_error() -> None:
    """A body that stops in the middle of an event-stream message is reported, not ignored."""
    raw = encode_frames(
        [["messageStart", {"role": "assistant"}], ["messageStop", {"stopReason": "end_turn"}]]
    )
    with pytest.raises(UpstreamProtocolError, match="inside a message"):
        run_stream(raw[:-5])


@pytest.mark.parametrize(
    ("exception_type", "status", "code"),
    [
        ("throttlingException", 429, "ThrottlingException"),
        ("validationException", 400, "ValidationException"),
        ("modelStreamErrorException", 502, "ModelStreamErrorException"),
        ("internalServerException", 502, "InternalServerException"),
        ("serviceUnavailableException", 502, "ServiceUnavailableException"),
        ("modelTimeoutException", 408, "ModelTimeoutException"),
        ("somethingNewException", 502, "SomethingNewException"),
    ],
)
def test_exception_frames_inside_a_200_stream_raise_with_their_status(
    exception_type: str, status: int, code: str
) -> None:
    """An exception frame mid-stream raises our error with the AWS status, name as code, message kept."""
    raw = encode_frames([["messageStart", {"role": "assistant"}]]) + es.exception(
        exception_type, "went wrong"
    )
    with pytest.raises(UpstreamStatusError) as info:
        run_stream(raw)
    assert (info.value.http_status, info.value.code, info.value.message) == (status, code, "went wrong")


def test_model_stream_error_without_message_uses_the_original_message() -> None:
    """modelStreamErrorException's originalMessage is used when its message is empty."""
    raw = es.exception(
        "modelStreamErrorException", "", originalStatusCode=500, originalMessage="model crashed"
    )
    with pytest.raises(UpstreamStatusError) as info:
        run_stream(raw)
    assert info.value.message == "model crashed"


def test_error_frames_raise_with_their_code_and_message() -> None:
    """An `error` message (code and text in headers) raises with that code and text."""
    with pytest.raises(UpstreamStatusError) as info:
        run_stream(es.error("InternalFailure", "request failed"))
    assert (info.value.http_status, info.value.code, info.value.message) == (
        502,
        "InternalFailure",
        "request failed",
    )


def test_malformed_stop_reason_in_a_stream_raises() -> None:
    """messageStop with malformed_tool_use ends the stream with an error, not a finish reason."""
    raw = encode_frames(
        [["messageStart", {"role": "assistant"}], ["messageStop", {"stopReason": "malformed_tool_use"}]]
    )
    with pytest.raises(UpstreamStatusError) as info:
        run_stream(raw)
    assert info.value.code == "malformed_tool_use"


def test_events_that_are_not_json_objects_are_protocol_errors() -> None:
    """An event payload that is not a JSON object raises UpstreamProtocolError."""
    translator = make_adapter().stream_translator(chat({"messages": HELLO, "stream": True}))
    with pytest.raises(UpstreamProtocolError):
        translator.feed(SSEEvent("contentBlockDelta", b"[1]"))
    with pytest.raises(UpstreamProtocolError):
        translator.feed(SSEEvent("contentBlockDelta", b"{not json"))


# --- HTTP errors -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "name", "expected_status"),
    [
        (400, "ValidationException", 400),
        (403, "AccessDeniedException", 403),
        (404, "ResourceNotFoundException", 404),
        (408, "ModelTimeoutException", 408),
        (429, "ThrottlingException", 429),
        (429, "ModelNotReadyException", 429),
        (424, "ModelErrorException", 502),
        (500, "InternalServerException", 502),
        (503, "ServiceUnavailableException", 502),
    ],
)
def test_http_errors_keep_status_message_and_aws_name(status: int, name: str, expected_status: int) -> None:
    """Bedrock HTTP errors keep their status (5xx and 424 -> 502), message, and the AWS name as code."""
    headers = {
        "X-Amzn-ErrorType": f"{name}:http://internal.amazon.com/coral/com.amazon.bedrock/",
        "retry-after": "3",
    }
    error = make_adapter().map_error(reply({"message": f"{name} happened"}, status, headers))
    assert isinstance(error, UpstreamStatusError)
    assert (error.http_status, error.code, error.message) == (expected_status, name, f"{name} happened")
    assert error.headers == {"retry-after": "3"}


def test_error_name_falls_back_to_the_body_type() -> None:
    """Without x-amzn-ErrorType the name comes from `__type` (namespace stripped); `Message` is read too."""
    body = {
        "__type": "com.amazon.coral.service#UnrecognizedClientException",
        "Message": "The security token is invalid.",
    }
    error = make_adapter().map_error(reply(body, 403))
    assert (error.http_status, error.code, error.message) == (
        403,
        "UnrecognizedClientException",
        "The security token is invalid.",
    )


def test_non_json_error_body_is_quoted_in_the_message() -> None:
    """A proxy's HTML error page gives a message with the status and the page text."""
    error = make_adapter().map_error(reply(b"<html><body>Bad   Gateway</body></html>", 502))
    assert error.http_status == 502
    assert "HTTP 502" in error.message and "Bad Gateway" in error.message
    empty = make_adapter().map_error(reply(b"", 503, {"x-amzn-errortype": "ServiceUnavailableException"}))
    assert empty.message == "the provider returned HTTP 503 (ServiceUnavailableException)"


def test_config_loader_runs_the_bedrock_check_with_the_entry_path() -> None:
    """`config check` on a bedrock entry without a region fails quoting models[i].aws_region."""
    raw = {
        "models": [
            {"name": "demo", "provider": "mock"},
            {
                "name": "c",
                "provider": "bedrock",
                "model": PROFILE,
                "aws_access_key_id": "A",
                "aws_secret_access_key": "S",
            },
        ]
    }
    with pytest.raises(ConfigError) as info:
        parse_config(raw)
    assert str(info.value).startswith("models[1].aws_region: required for provider bedrock")
    raw["models"][1]["aws_region"] = "us-east-1"
    assert parse_config(raw).models[1].aws_region == "us-east-1"
