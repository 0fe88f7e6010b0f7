"""A fake AWS Bedrock Runtime speaking the exact wire format of reference §5 (Converse, ConverseStream).

Serves ``POST /model/{modelId}/converse`` (JSON) and ``/converse-stream`` (binary AWS
event-stream, ``application/vnd.amazon.eventstream``: ``messageStart``, per block
``contentBlockStart`` (tool use only) / ``contentBlockDelta`` / ``contentBlockStop``,
``messageStop``, then ``metadata`` with usage, every payload padded with a ``"p"`` key as AWS
does). The model id must arrive as one percent-encoded path label.

Every request's SigV4 signature is verified by recomputing it here, independently of the
gateway's signer, from the raw path, query, signed headers and body with the fake's credentials
(plus the session token when the fake has one); a wrong signature, a stale ``x-amz-date``, a
foreign access key or a missing token gets Bedrock's 403 with ``x-amzn-ErrorType``. Bodies are
validated the way Bedrock rejects what an OpenAI-to-Converse translator gets wrong: unknown or
null members, a conversation not starting with a user turn or not alternating, blank text
blocks, content-block unions with zero or two members, tool results that answer no earlier
tool use, tool use left unanswered, tool history without a ``toolConfig``, out-of-range
inference parameters. Errors are ``{"message": ...}`` with the name in ``x-amzn-ErrorType``.

Beyond the shared behaviours, ``StreamException`` makes a 200 stream end with an exception
frame (or, on a non-streamed call, makes the call fail with that exception's HTTP error).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import json
import random
import re
import string
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, unquote

from aiohttp import web

from . import aws_eventstream
from .behaviours import Behaviour, Outcome, Reply, ToolCalls, estimate_tokens, split_fragments, split_text
from .server import ApiError, FakeProviderServer

SERVICE = "bedrock"
_PATH_RE = re.compile(r"^/model/([^/]+)/(converse|converse-stream)$")
_AUTH_RE = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request,\s*"
    r"SignedHeaders=([a-z0-9;-]+),\s*Signature=([0-9a-f]{64})$"
)
_CLOCK_SKEW_S = 300  # AWS refuses signatures more than 5 minutes off

_BODY_MEMBERS = frozenset(
    {
        "messages", "system", "inferenceConfig", "toolConfig", "guardrailConfig",
        "additionalModelRequestFields", "additionalModelResponseFieldPaths", "promptVariables",
        "requestMetadata", "performanceConfig", "serviceTier", "outputConfig",
    }
)  # fmt: skip
_BLOCK_MEMBERS = frozenset(
    {
        "text", "image", "document", "video", "audio", "toolUse", "toolResult", "guardContent", "cachePoint",
        "reasoningContent", "citationsContent", "searchResult",
    }
)  # fmt: skip
_RESULT_MEMBERS = frozenset({"json", "text", "image", "document", "video", "searchResult"})
_SYSTEM_MEMBERS = frozenset({"text", "guardContent", "cachePoint"})
_INFERENCE_MEMBERS = frozenset({"maxTokens", "temperature", "topP", "stopSequences"})
_IMAGE_FORMATS = ("png", "jpeg", "gif", "webp")
_ID_RE = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_TOOL_NAME_RE = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")

BAD_SIGNATURE = (
    "The request signature we calculated does not match the signature you provided. Check your AWS "
    "Secret Access Key and signing method. Consult the service documentation for details."
)
_DEFAULT_ERRORS: dict[int, tuple[str, str]] = {
    400: ("ValidationException", "Malformed input request, please reformat your input and try again."),
    401: ("UnrecognizedClientException", "The security token included in the request is invalid."),
    403: ("AccessDeniedException", "You don't have access to the model with the specified model ID."),
    404: ("ResourceNotFoundException", "The specified model could not be found."),
    408: ("ModelTimeoutException", "Model has timed out in processing the request."),
    424: ("ModelErrorException", "The model returned an error."),
    429: ("ThrottlingException", "Too many requests, please wait before trying again."),
    500: ("InternalServerException", "The server encountered an internal error."),
    503: ("ServiceUnavailableException", "Bedrock is unable to process your request."),
}
# Exception name (stream spelling) -> HTTP status, for StreamException on non-streamed calls.
_EXCEPTION_STATUS = {
    "validationException": 400,
    "throttlingException": 429,
    "modelStreamErrorException": 424,
    "internalServerException": 500,
    "serviceUnavailableException": 503,
    "modelTimeoutException": 408,
}


def error_type_header(name: str) -> dict[str, str]:
    """The ``x-amzn-ErrorType`` header as Bedrock sends it (the name, then a colon and a namespace)."""
    return {"x-amzn-ErrorType": f"{name}:http://internal.amazon.com/coral/com.amazon.bedrock/"}


def default_error(status: int) -> tuple[str, str]:
    """(AWS exception name, message) Bedrock answers with for an HTTP status."""
    return _DEFAULT_ERRORS.get(
        status, ("InternalServerException", "The server encountered an internal error.")
    )


@dataclass(frozen=True)
class StreamException:
    """A ConverseStream that sends ``after_events`` events of ``then``'s stream, then an exception frame.

    ``exception_type`` is the stream spelling (``throttlingException``, ``modelStreamErrorException``,
    ...). ``pause_s`` waits between those events and the exception, so a client reads them first. On
    a non-streamed call the fake answers with that exception's HTTP status and body instead.
    """

    exception_type: str
    message: str
    after_events: int = 0
    then: Reply | ToolCalls | None = None
    pause_s: float = 0.0


def _validation(message: str) -> ApiError:
    return ApiError(400, {"message": message}, error_type_header("ValidationException"))


def _denied(name: str, message: str) -> ApiError:
    return ApiError(403, {"message": message}, error_type_header(name))


def _padding() -> str:
    # AWS pads event payloads with a random-length "p" member (reference §5.5).
    return "".join(random.choice(string.ascii_letters) for _ in range(random.randint(1, 24)))


def _text_of(blocks: Any) -> str:
    if not isinstance(blocks, list):
        return ""
    return " ".join(b["text"] for b in blocks if isinstance(b, dict) and isinstance(b.get("text"), str))


class FakeBedrock(FakeProviderServer):
    """Fake ``https://bedrock-runtime.{region}.amazonaws.com``; ``base_url`` has no path."""

    base_path = ""
    stream_content_type = "application/vnd.amazon.eventstream"

    def __init__(
        self,
        *,
        access_key: str = "AKIDFAKEBEDROCK",
        secret_key: str = "fake/secret+key0123456789",
        session_token: str | None = None,
        region: str = "us-east-1",
        default: Behaviour | None = None,
    ) -> None:
        super().__init__(default=default)
        self.access_key = access_key
        self.secret_key = secret_key
        self.session_token = session_token
        self.region = region
        #: Decoded model id of every call that passed routing, in order (the path label, unquoted).
        self.model_ids: list[str] = []
        self._held: Any = None

    # ---------------------------------------------------------------------------- routes

    def routes(self) -> list[web.RouteDef]:
        # One catch-all route: the model id is matched on the raw path, where `%2F` is still one label.
        return [web.route("*", "/{tail:.*}", self._dispatch)]

    def wants_stream(self, request: web.Request, body: dict[str, Any]) -> bool:
        return request.raw_path.split("?", 1)[0].endswith("/converse-stream")

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        raw, body = await self.record(request)
        request_id = self.new_request_id()
        match = _PATH_RE.match(request.raw_path.split("?", 1)[0])
        if request.method != "POST" or match is None:
            error = ApiError(404, {"message": "Not Found"}, error_type_header("UnknownOperationException"))
            return self.api_error_response(error, request_id)
        try:
            self.verify_signature(request, raw)
            self.model_ids.append(unquote(match.group(1)))
            self.validate(body)
        except ApiError as error:
            return self.api_error_response(error, request_id)
        return await self.serve_chat(request, body, request_id)

    # ------------------------------------------------------------------------- SigV4 check

    def verify_signature(self, request: web.Request, raw_body: bytes) -> None:
        """Recompute the request's SigV4 signature (reference §5.6) and refuse it if it differs."""
        auth = request.headers.get("Authorization")
        if not auth:
            raise _denied("MissingAuthenticationTokenException", "Missing Authentication Token")
        match = _AUTH_RE.match(auth)
        if match is None:
            raise _denied(
                "IncompleteSignatureException",
                f"Authorization header requires well-formed fields: {auth[:40]}",
            )
        access_key, date, region, service, signed_list, signature = match.groups()
        if access_key != self.access_key:
            raise _denied(
                "UnrecognizedClientException", "The security token included in the request is invalid."
            )
        if region != self.region:
            raise _denied(
                "InvalidSignatureException", f"Credential should be scoped to a valid region: '{region}'"
            )
        if service != SERVICE:
            raise _denied(
                "InvalidSignatureException", f"Credential should be scoped to correct service: '{SERVICE}'."
            )
        amz_date = request.headers.get("X-Amz-Date", "")
        try:
            moment = datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        except ValueError:
            raise _denied(
                "IncompleteSignatureException", "X-Amz-Date header is missing or malformed"
            ) from None
        if abs(time.time() - moment.timestamp()) > _CLOCK_SKEW_S:
            raise _denied(
                "InvalidSignatureException", f"Signature expired: {amz_date} is now earlier than allowed"
            )
        if amz_date[:8] != date:
            raise _denied(
                "InvalidSignatureException",
                "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP",
            )
        names = signed_list.split(";")
        if names != sorted(names) or "host" not in names or "x-amz-date" not in names:
            raise _denied("InvalidSignatureException", BAD_SIGNATURE)
        token = request.headers.get("X-Amz-Security-Token")
        if self.session_token is not None:
            if token != self.session_token or "x-amz-security-token" not in names:
                raise _denied(
                    "UnrecognizedClientException", "The security token included in the request is invalid."
                )
        elif token is not None:
            raise _denied(
                "UnrecognizedClientException", "The security token included in the request is invalid."
            )

        raw_path, _, raw_query = request.raw_path.partition("?")
        query_pairs = sorted(
            (quote(unquote(k), safe="-_.~"), quote(unquote(v), safe="-_.~"))
            for k, _, v in (item.partition("=") for item in raw_query.split("&") if item)
        )
        header_lines = []
        for name in names:
            values = request.headers.getall(name, [])
            if not values:
                raise _denied("InvalidSignatureException", BAD_SIGNATURE)
            header_lines.append(name + ":" + ",".join(" ".join(v.split()) for v in values) + "\n")
        canonical = "\n".join(
            [
                request.method,
                quote(raw_path, safe="/~"),
                "&".join(f"{k}={v}" for k, v in query_pairs),
                "".join(header_lines),
                signed_list,
                hashlib.sha256(raw_body).hexdigest(),
            ]
        )
        scope = f"{date}/{region}/{service}/aws4_request"
        to_sign = f"AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
        key = ("AWS4" + self.secret_key).encode()
        for part in (date, region, service, "aws4_request"):
            key = hmac.new(key, part.encode(), hashlib.sha256).digest()
        expected = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature):
            raise _denied("InvalidSignatureException", BAD_SIGNATURE)

    # ------------------------------------------------------------------------- validation

    def validate(self, body: Any) -> None:
        if not isinstance(body, dict):
            raise _validation("Malformed input request: the request body must be a JSON object")
        for key, value in body.items():
            if key not in _BODY_MEMBERS:
                raise _validation(f"Malformed input request: extraneous key [{key}] is not permitted")
            if value is None:
                raise _validation(f"Malformed input request: [{key}] must not be null")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise _validation(
                "A conversation must start with a user message. Try again with a conversation "
                "that starts with a user message."
            )
        self._validate_messages(messages)
        self._validate_system(body.get("system"))
        self._validate_inference(body.get("inferenceConfig"))
        self._validate_tool_config(body.get("toolConfig"), messages)
        for key in (
            "additionalModelRequestFields",
            "requestMetadata",
            "performanceConfig",
            "guardrailConfig",
        ):
            if key in body and not isinstance(body[key], dict):
                raise _validation(f"Malformed input request: [{key}] must be an object")

    def _validate_messages(self, messages: list[Any]) -> None:
        tool_uses_seen: set[str] = set()
        for index, message in enumerate(messages):
            where = f"messages.{index}"
            if not isinstance(message, dict) or set(message) != {"role", "content"}:
                raise _validation(f"Malformed input request: {where} must have exactly role and content")
            role = message["role"]
            if role not in ("user", "assistant"):
                raise _validation(f"Malformed input request: {where}.role must be one of [user, assistant]")
            if index == 0 and role != "user":
                raise _validation(
                    "A conversation must start with a user message. Try again with a conversation that "
                    "starts with a user message."
                )
            if index > 0 and messages[index - 1]["role"] == role:
                raise _validation(
                    "A conversation must alternate between user and assistant roles. Make sure the "
                    "conversation alternates between user and assistant roles and try again."
                )
            content = message["content"]
            if not isinstance(content, list) or not content:
                raise _validation(
                    f"The content field in the Message object at {where} is empty. Add a "
                    "ContentBlock object to the content field and try again."
                )
            for block_index, block in enumerate(content):
                self._validate_block(f"{where}.content.{block_index}", role, block, tool_uses_seen)
            if role == "assistant":
                self._check_answered(index, messages)
            for block in content:
                if "toolUse" in block:
                    tool_uses_seen.add(block["toolUse"]["toolUseId"])

    def _check_answered(self, index: int, messages: list[Any]) -> None:
        """Every toolUse of an assistant turn is answered by a toolResult in the next (user) turn."""
        uses = [b["toolUse"]["toolUseId"] for b in messages[index]["content"] if "toolUse" in b]
        if not uses or index + 1 >= len(messages):
            return
        answered = {b["toolResult"]["toolUseId"] for b in messages[index + 1]["content"] if "toolResult" in b}
        missing = [use for use in uses if use not in answered]
        if missing:
            raise _validation(
                f"Expected toolResult blocks at messages.{index + 1}.content for the following Ids: "
                + ", ".join(missing)
            )

    @staticmethod
    def _union(where: str, block: Any, members: frozenset[str]) -> str:
        if not isinstance(block, dict) or len(block) != 1:
            raise _validation(f"Malformed input request: {where} must set exactly one member of the union")
        (member,) = block
        if member not in members:
            raise _validation(f"Malformed input request: {where}: unknown member [{member}]")
        if block[member] is None:
            raise _validation(f"Malformed input request: {where}.{member} must not be null")
        return str(member)

    def _validate_block(self, where: str, role: str, block: Any, tool_uses_seen: set[str]) -> None:
        member = self._union(where, block, _BLOCK_MEMBERS)
        value = block[member]
        if member == "text":
            self._check_text(where, value)
        elif member == "image":
            self._check_image(f"{where}.image", value)
        elif member == "cachePoint":
            if value != {"type": "default"} and not (
                isinstance(value, dict) and value.get("type") == "default"
            ):
                raise _validation(f"Malformed input request: {where}.cachePoint.type must be default")
        elif member == "toolUse":
            if role != "assistant":
                raise _validation(
                    f"Malformed input request: {where}: toolUse blocks are only allowed in assistant messages"
                )
            if not isinstance(value, dict) or set(value) != {"toolUseId", "name", "input"}:
                raise _validation(f"Malformed input request: {where}.toolUse needs toolUseId, name and input")
            if not isinstance(value["toolUseId"], str) or not _ID_RE.match(value["toolUseId"]):
                raise _validation(
                    f"Malformed input request: {where}.toolUse.toolUseId does not match "
                    "[a-zA-Z0-9_-]+ (1-64 characters)"
                )
            if not isinstance(value["name"], str) or not _TOOL_NAME_RE.match(value["name"]):
                raise _validation(f"Malformed input request: {where}.toolUse.name is not a valid tool name")
            if not isinstance(value["input"], dict):
                raise _validation(f"Malformed input request: {where}.toolUse.input must be a JSON object")
        elif member == "toolResult":
            self._check_tool_result(where, role, value, tool_uses_seen)

    @staticmethod
    def _check_text(where: str, value: Any) -> None:
        if not isinstance(value, str):
            raise _validation(f"Malformed input request: {where}.text must be a string")
        if not value.strip():
            raise _validation(
                f"The text field in the ContentBlock object at {where} is blank. Add text to the text "
                "field, and try again."
            )

    @staticmethod
    def _check_image(where: str, value: Any) -> None:
        if not isinstance(value, dict) or set(value) != {"format", "source"}:
            raise _validation(f"Malformed input request: {where} needs exactly format and source")
        if value["format"] not in _IMAGE_FORMATS:
            raise _validation(
                f"Malformed input request: {where}.format must be one of {list(_IMAGE_FORMATS)}"
            )
        source = value["source"]
        if not isinstance(source, dict) or len(source) != 1 or set(source) - {"bytes", "s3Location"}:
            raise _validation(
                f"Malformed input request: {where}.source must set exactly one of bytes, s3Location"
            )
        if "bytes" in source:
            try:
                decoded = base64.b64decode(source["bytes"], validate=True)
            except (binascii.Error, TypeError, ValueError):
                raise _validation(
                    f"Malformed input request: {where}.source.bytes is not valid base64"
                ) from None
            if not decoded:
                raise _validation(f"Malformed input request: {where}.source.bytes is empty")

    def _check_tool_result(self, where: str, role: str, value: Any, tool_uses_seen: set[str]) -> None:
        if role != "user":
            raise _validation(
                f"Malformed input request: {where}: toolResult blocks are only allowed in user messages"
            )
        if not isinstance(value, dict) or not {"toolUseId", "content"} <= set(value):
            raise _validation(f"Malformed input request: {where}.toolResult needs toolUseId and content")
        if set(value) - {"toolUseId", "content", "status"}:
            raise _validation(f"Malformed input request: {where}.toolResult has unknown members")
        if value["toolUseId"] not in tool_uses_seen:
            raise _validation(
                f"The toolUseId {value['toolUseId']!r} in {where}.toolResult doesn't match any toolUse "
                "block in the previous assistant messages."
            )
        if value.get("status", "success") not in ("success", "error"):
            raise _validation(f"Malformed input request: {where}.toolResult.status must be success or error")
        content = value["content"]
        if not isinstance(content, list):
            raise _validation(f"Malformed input request: {where}.toolResult.content must be a list")
        for index, item in enumerate(content):
            at = f"{where}.toolResult.content.{index}"
            member = self._union(at, item, _RESULT_MEMBERS)
            if member == "text":
                self._check_text(at, item["text"])
            elif member == "image":
                self._check_image(f"{at}.image", item["image"])

    def _validate_system(self, system: Any) -> None:
        if system is None:
            return
        if not isinstance(system, list):
            raise _validation("Malformed input request: system must be a list of SystemContentBlock")
        for index, block in enumerate(system):
            member = self._union(f"system.{index}", block, _SYSTEM_MEMBERS)
            if member == "text":
                self._check_text(f"system.{index}", block["text"])

    @staticmethod
    def _validate_inference(config: Any) -> None:
        if config is None:
            return
        if not isinstance(config, dict):
            raise _validation("Malformed input request: inferenceConfig must be an object")
        unknown = set(config) - _INFERENCE_MEMBERS
        if unknown:
            raise _validation(
                f"Malformed input request: extraneous key [inferenceConfig.{min(unknown)}] is not permitted"
            )
        if "maxTokens" in config:
            value = config["maxTokens"]
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise _validation("The maximum tokens you requested must be an integer of at least 1.")
        for name in ("temperature", "topP"):
            if name in config:
                value = config[name]
                if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
                    raise _validation(
                        f"1 validation error detected: Value '{value}' at 'inferenceConfig.{name}' failed to "
                        "satisfy constraint: Member must have value less than or equal to 1"
                    )
        stops = config.get("stopSequences", [])
        if not isinstance(stops, list) or not all(isinstance(s, str) and s for s in stops):
            raise _validation(
                "Malformed input request: inferenceConfig.stopSequences must be non-empty strings"
            )

    def _validate_tool_config(self, config: Any, messages: list[Any]) -> None:
        has_tool_blocks = any(
            "toolUse" in block or "toolResult" in block
            for message in messages
            for block in message["content"]
        )
        if config is None:
            if has_tool_blocks:
                raise _validation(
                    "The toolConfig field must be defined when using toolUse and toolResult content blocks."
                )
            return
        if not isinstance(config, dict) or set(config) - {"tools", "toolChoice"} or "tools" not in config:
            raise _validation("Malformed input request: toolConfig needs tools (and optionally toolChoice)")
        tools = config["tools"]
        if not isinstance(tools, list) or not tools:
            raise _validation("Malformed input request: toolConfig.tools must be a non-empty list")
        names: list[str] = []
        for index, tool in enumerate(tools):
            where = f"toolConfig.tools.{index}"
            member = self._union(where, tool, frozenset({"toolSpec", "systemTool", "cachePoint"}))
            if member != "toolSpec":
                continue
            spec = tool["toolSpec"]
            if not isinstance(spec, dict) or set(spec) - {"name", "description", "inputSchema", "strict"}:
                raise _validation(f"Malformed input request: {where}.toolSpec has unknown members")
            if not isinstance(spec.get("name"), str) or not _TOOL_NAME_RE.match(spec["name"]):
                raise _validation(f"Malformed input request: {where}.toolSpec.name is not a valid tool name")
            if "description" in spec and (
                not isinstance(spec["description"], str) or not spec["description"]
            ):
                raise _validation(f"Malformed input request: {where}.toolSpec.description must be non-empty")
            schema = spec.get("inputSchema")
            if (
                not isinstance(schema, dict)
                or set(schema) != {"json"}
                or not isinstance(schema["json"], dict)
            ):
                raise _validation(
                    f"Malformed input request: {where}.toolSpec.inputSchema must be {{json: object}}"
                )
            if spec["name"] in names:
                raise _validation(
                    f"The tool name {spec['name']!r} is used more than once in toolConfig.tools."
                )
            names.append(spec["name"])
        choice = config.get("toolChoice")
        if choice is not None:
            member = self._union("toolConfig.toolChoice", choice, frozenset({"auto", "any", "tool"}))
            if member == "tool":
                name = choice["tool"].get("name") if isinstance(choice["tool"], dict) else None
                if name not in names:
                    raise _validation(
                        f"The tool {name!r} in toolConfig.toolChoice is not in toolConfig.tools."
                    )
            elif choice[member] != {}:
                raise _validation(f"Malformed input request: toolConfig.toolChoice.{member} must be {{}}")

    # ------------------------------------------------------------------------- behaviours

    def next_behaviour(self) -> Behaviour:
        held, self._held = self._held, None
        return held if held is not None else super().next_behaviour()

    async def serve_chat(
        self, request: web.Request, body: dict[str, Any], request_id: str
    ) -> web.StreamResponse:
        behaviour: Any = self.next_behaviour()
        if not isinstance(behaviour, StreamException):
            self._held = behaviour  # the base class takes it back at once (no await in between)
            return await super().serve_chat(request, body, request_id)
        if not self.wants_stream(request, body):
            status = _EXCEPTION_STATUS.get(behaviour.exception_type, 500)
            name = behaviour.exception_type[:1].upper() + behaviour.exception_type[1:]
            error = ApiError(status, {"message": behaviour.message}, error_type_header(name))
            return self.api_error_response(error, request_id)
        outcome = self.outcome(body, behaviour.then or Reply())
        response = web.StreamResponse(
            headers={**self.response_headers(request_id), "Content-Type": self.stream_content_type}
        )
        await response.prepare(request)
        for event in self.stream_events(body, outcome)[: behaviour.after_events]:
            await response.write(event)
        if behaviour.pause_s:
            await asyncio.sleep(behaviour.pause_s)
        await response.write(aws_eventstream.exception(behaviour.exception_type, behaviour.message))
        await response.write_eof()
        return response

    # ------------------------------------------------------------------------- wire format

    def new_request_id(self) -> str:
        return str(uuid.uuid4())

    def response_headers(self, request_id: str) -> dict[str, str]:
        return {"x-amzn-RequestId": request_id}

    def error_body(self, status: int, request_id: str) -> dict[str, Any]:
        return {"message": default_error(status)[1]}

    def default_text(self, body: dict[str, Any]) -> str:
        for message in reversed(body["messages"]):
            if message["role"] == "user" and (text := _text_of(message["content"])):
                return "fake: " + text
        return "fake: "

    def prompt_words(self, body: dict[str, Any]) -> int:
        texts = [_text_of(body.get("system"))]
        for message in body["messages"]:
            texts.append(_text_of(message["content"]))
            texts.extend(
                _text_of(block["toolResult"].get("content"))
                for block in message["content"]
                if "toolResult" in block
            )
        return max(1, estimate_tokens(*texts))

    @staticmethod
    def _usage(outcome: Outcome) -> dict[str, Any]:
        usage = {
            "inputTokens": outcome.prompt_tokens,
            "outputTokens": outcome.completion_tokens,
            "totalTokens": outcome.prompt_tokens
            + outcome.completion_tokens
            + outcome.cached_tokens
            + outcome.cache_creation_tokens,
        }
        if outcome.cached_tokens or outcome.cache_creation_tokens:
            usage["cacheReadInputTokens"] = outcome.cached_tokens
            usage["cacheWriteInputTokens"] = outcome.cache_creation_tokens
        return usage

    @staticmethod
    def _blocks(outcome: Outcome) -> list[dict[str, Any]]:
        blocks: list[dict[str, Any]] = []
        if outcome.text:
            blocks.append({"text": outcome.text})
        for name, args in outcome.calls:
            tool_id = "tooluse_" + "".join(
                random.choice(string.ascii_letters + string.digits) for _ in range(22)
            )
            blocks.append({"toolUse": {"toolUseId": tool_id, "name": name, "input": args}})
        return blocks

    @staticmethod
    def _stop_reason(outcome: Outcome) -> str:
        return outcome.finish_reason or ("tool_use" if outcome.calls else "end_turn")

    def completion_body(self, body: dict[str, Any], outcome: Outcome) -> dict[str, Any]:
        return {
            "output": {"message": {"role": "assistant", "content": self._blocks(outcome)}},
            "stopReason": self._stop_reason(outcome),
            "usage": self._usage(outcome),
            "metrics": {"latencyMs": 321},
        }

    def stream_events(self, body: dict[str, Any], outcome: Outcome) -> list[bytes]:
        def event(kind: str, payload: dict[str, Any]) -> bytes:
            return aws_eventstream.event(kind, {**payload, "p": _padding()})

        events = [event("messageStart", {"role": "assistant"})]
        for index, block in enumerate(self._blocks(outcome)):
            if "text" in block:
                # No contentBlockStart for text blocks: the start union has no text member.
                events.extend(
                    event("contentBlockDelta", {"contentBlockIndex": index, "delta": {"text": piece}})
                    for piece in split_text(block["text"])
                )
            else:
                tool = block["toolUse"]
                start = {"toolUse": {"toolUseId": tool["toolUseId"], "name": tool["name"]}}
                events.append(event("contentBlockStart", {"contentBlockIndex": index, "start": start}))
                events.extend(
                    event(
                        "contentBlockDelta",
                        {"contentBlockIndex": index, "delta": {"toolUse": {"input": piece}}},
                    )
                    for piece in split_fragments(json.dumps(tool["input"]))
                )
            events.append(event("contentBlockStop", {"contentBlockIndex": index}))
        events.append(event("messageStop", {"stopReason": self._stop_reason(outcome)}))
        events.append(event("metadata", {"usage": self._usage(outcome), "metrics": {"latencyMs": 321}}))
        return events
