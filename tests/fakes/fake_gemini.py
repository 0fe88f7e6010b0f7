"""A fake Gemini server speaking the exact wire format of reference §4: the Gemini API and Vertex AI.

Gemini API (key in ``x-goog-api-key`` or ``?key=``): ``POST /v1beta/models/{m}:generateContent``,
``:streamGenerateContent?alt=sse`` and ``:batchEmbedContents``. Vertex AI (OAuth bearer from the
fake token endpoint ``POST /token``, see google_oauth.py): the same calls under
``/v1/projects/{p}/locations/{l}/publishers/google/models/{m}:...`` plus ``:predict`` for
embeddings. Streams are ``data:``-only SSE events terminated by CRLF CRLF (as observed on Google's
servers) with no end sentinel; each event holds only the new parts, and the last one carries
``finishReason`` and the full ``usageMetadata``.

Requests are validated the way the real API rejects what an OpenAI-to-Gemini translator gets
wrong: unknown fields anywhere (``messages``, ``additionalProperties`` in a function schema...),
roles other than ``user``/``model`` (and, on Vertex, a missing role), empty ``parts``, empty text,
a part with two data members, a ``functionResponse`` without ``name`` or with a non-object
``response``, function-response turns that do not answer the preceding call turn, parameterless
``OBJECT`` schemas, unsupported ``format`` values, out-of-range generation settings. Errors use
Google's ``{"error": {"code", "message", "status", "details"}}`` envelope.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import secrets
from typing import Any

from aiohttp import web

from .behaviours import Behaviour, Outcome, estimate_tokens, split_text
from .google_oauth import GoogleOAuth, GoogleOAuthServer, google_error
from .server import ApiError

_NOT_FOUND_HTML = "<!DOCTYPE html><html><body><p><b>404.</b> That's an error.</p></body></html>"

# Google's default error (status name, message) per HTTP status (reference §4.6).
_ERRORS: dict[int, tuple[str, str]] = {
    400: ("INVALID_ARGUMENT", "Request contains an invalid argument."),
    401: ("UNAUTHENTICATED", "Request had invalid authentication credentials."),
    403: ("PERMISSION_DENIED", "The caller does not have permission"),
    404: ("NOT_FOUND", "Requested entity was not found."),
    429: (
        "RESOURCE_EXHAUSTED",
        "You exceeded your current quota, please check your plan and billing details.",
    ),
    500: ("INTERNAL", "An internal error has occurred. Please retry or report in https://ai.google.dev"),
    503: ("UNAVAILABLE", "The model is overloaded. Please try again later."),
    504: ("DEADLINE_EXCEEDED", "Deadline expired before operation could complete."),
}

# proto3 JSON accepts lowerCamelCase and the proto field names; anything else is "Unknown name".
_REQUEST_KEYS = frozenset(
    {
        "contents", "systemInstruction", "system_instruction", "tools", "toolConfig", "tool_config",
        "safetySettings", "safety_settings", "generationConfig", "generation_config", "cachedContent",
        "cached_content", "model",
    }
)  # fmt: skip
_VERTEX_REQUEST_KEYS = _REQUEST_KEYS | {"labels", "modelArmorConfig"}
_PART_DATA = {
    "text": "text",
    "inlineData": "inline_data",
    "inline_data": "inline_data",
    "fileData": "file_data",
    "file_data": "file_data",
    "functionCall": "function_call",
    "function_call": "function_call",
    "functionResponse": "function_response",
    "function_response": "function_response",
    "executableCode": "executable_code",
    "codeExecutionResult": "code_execution_result",
}
_PART_META = frozenset({"thought", "thoughtSignature", "thought_signature", "videoMetadata", "partMetadata"})
_SCHEMA_KEYS = frozenset(
    {
        "type", "format", "title", "description", "nullable", "enum", "items", "minItems", "maxItems",
        "properties", "required", "minProperties", "maxProperties", "minimum", "maximum", "minLength",
        "maxLength", "pattern", "example", "anyOf", "propertyOrdering", "default",
    }
)  # fmt: skip
_SCHEMA_TYPES = ("STRING", "NUMBER", "INTEGER", "BOOLEAN", "ARRAY", "OBJECT", "NULL")
_FORMATS = {"STRING": ("enum", "date-time"), "NUMBER": ("float", "double"), "INTEGER": ("int32", "int64")}
_DECLARATION_KEYS = frozenset(
    {
        "name",
        "description",
        "parameters",
        "parametersJsonSchema",
        "response",
        "responseJsonSchema",
        "behavior",
    }
)
_TOOL_KEYS = frozenset(
    {
        "functionDeclarations", "function_declarations", "googleSearch", "googleSearchRetrieval",
        "codeExecution", "urlContext", "fileSearch", "googleMaps", "computerUse",
    }
)  # fmt: skip
_FUNCTION_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:-]{0,63}$")
_GENERATION_KEYS = frozenset(
    {
        "candidateCount", "stopSequences", "maxOutputTokens", "temperature", "topP", "topK", "seed",
        "responseMimeType", "responseSchema", "responseJsonSchema", "presencePenalty", "frequencyPenalty",
        "responseLogprobs", "logprobs", "responseModalities", "speechConfig", "thinkingConfig",
        "imageConfig", "mediaResolution", "enableEnhancedCivicAnswers",
    }
)  # fmt: skip
_MIME_TYPES = ("text/plain", "application/json", "text/x.enum")
_MODES = ("AUTO", "ANY", "NONE", "VALIDATED", "MODE_UNSPECIFIED")
_EMPTY_TEXT = (
    "Unable to submit request because it has an empty text parameter. Add a value to the parameter "
    "and try again."
)


def _invalid(message: str) -> ApiError:
    return google_error(400, message, "INVALID_ARGUMENT")


def _unknown(name: str, where: str | None = None) -> ApiError:
    at = f" at '{where}'" if where else ""
    return _invalid(f'Invalid JSON payload received. Unknown name "{name}"{at}: Cannot find field.')


def _violation(field: str, message: str) -> ApiError:
    return _invalid(f"* GenerateContentRequest.{field}: {message}\n")


def _check_keys(node: dict[str, Any], allowed: frozenset[str], where: str | None) -> None:
    for key in node:
        if key not in allowed:
            raise _unknown(key, where)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _text_of(parts: Any) -> str:
    if not isinstance(parts, list):
        return ""
    return " ".join(p["text"] for p in parts if isinstance(p, dict) and isinstance(p.get("text"), str))


def _vector(text: str, dimensions: int) -> list[float]:
    """A deterministic unit-ish vector for `text` (so tests can compare inputs and outputs)."""
    digest = hashlib.sha256(text.encode()).digest()
    return [round((digest[i % len(digest)] - 128) / 128, 6) for i in range(dimensions)]


class FakeGemini(GoogleOAuthServer):
    """Fake ``generativelanguage.googleapis.com`` and ``{location}-aiplatform.googleapis.com`` in one."""

    base_path = ""

    def __init__(
        self,
        *,
        api_key: str | None = None,
        default: Behaviour | None = None,
        project: str = "fake-project",
    ) -> None:
        super().__init__(api_key=api_key, default=default)
        self.project = project
        self.oauth = GoogleOAuth(project_id=project)

    # ---------------------------------------------------------------------------- routes

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/token", self._token),
            web.post("/v1beta/{name:(?:models|tunedModels)/[^/]+}", self._studio),
            web.post(
                "/v1/projects/{project}/locations/{location}/publishers/google/models/{name}", self._vertex
            ),
            web.route("*", "/{tail:.*}", self._not_found),
        ]

    async def _not_found(self, request: web.Request) -> web.Response:
        await self.record(request)
        return web.Response(status=404, text=_NOT_FOUND_HTML, content_type="text/html")

    async def _studio(self, request: web.Request) -> web.StreamResponse:
        _, body = await self.record(request)
        request_id = self.new_request_id()
        name, _, action = request.match_info["name"].rpartition(":")
        try:
            self._authenticate_key(request)
            return await self._dispatch(request, body, request_id, name, action, vertex=False)
        except ApiError as error:
            return self.api_error_response(error, request_id)

    async def _vertex(self, request: web.Request) -> web.StreamResponse:
        _, body = await self.record(request)
        request_id = self.new_request_id()
        model, _, action = request.match_info["name"].rpartition(":")
        try:
            self.oauth.authorize(request)
            project = request.match_info["project"]
            if project != self.project:
                raise google_error(
                    403,
                    "Permission 'aiplatform.endpoints.predict' denied on resource "
                    f"'//aiplatform.googleapis.com/projects/{project}/locations/"
                    f"{request.match_info['location']}/publishers/google/models/{model}' "
                    "(or it may not exist).",
                    "PERMISSION_DENIED",
                )
            return await self._dispatch(request, body, request_id, f"models/{model}", action, vertex=True)
        except ApiError as error:
            return self.api_error_response(error, request_id)

    async def _dispatch(
        self, request: web.Request, body: Any, request_id: str, name: str, action: str, *, vertex: bool
    ) -> web.StreamResponse:
        if action in ("generateContent", "streamGenerateContent"):
            if action == "streamGenerateContent" and request.query.get("alt") != "sse":
                # The real API then streams one JSON array; the gateway must ask for SSE instead.
                raise _invalid("fake Gemini: streamGenerateContent is only implemented with ?alt=sse")
            self._validate(body, vertex=vertex)
            # The model name travels to completion_body under a key no real request can have.
            return await self.serve_chat(request, {**body, " model": name.rsplit("/", 1)[-1]}, request_id)
        if action == "batchEmbedContents" and not vertex:
            return self.json_response(self._batch_embed(body, name), request_id=request_id)
        if action == "predict" and vertex:
            return self.json_response(self._predict(body), request_id=request_id)
        raise google_error(404, f"Method {action!r} is not found for {name}.", "NOT_FOUND")

    def wants_stream(self, request: web.Request, body: dict[str, Any]) -> bool:
        return request.path.endswith(":streamGenerateContent")

    # ------------------------------------------------------------------- auth and validation

    def _authenticate_key(self, request: web.Request) -> None:
        key = request.headers.get("x-goog-api-key", "").strip() or request.query.get("key", "").strip()
        if not key:
            raise google_error(
                403,
                "Method doesn't allow unregistered callers (callers without established identity). "
                "Please use API Key or other form of API consumer identity to call this API.",
                "PERMISSION_DENIED",
            )
        if self.api_key is not None and key != self.api_key:
            raise google_error(
                400,
                "API key not valid. Please pass a valid API key.",
                "INVALID_ARGUMENT",
                [
                    {
                        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                        "reason": "API_KEY_INVALID",
                        "domain": "googleapis.com",
                        "metadata": {"service": "generativelanguage.googleapis.com"},
                    }
                ],
            )

    def _validate(self, body: Any, *, vertex: bool) -> None:
        if not isinstance(body, dict):
            raise _invalid("Invalid JSON payload received. Expected an object.")
        _check_keys(body, _VERTEX_REQUEST_KEYS if vertex else _REQUEST_KEYS, None)
        contents = body.get("contents")
        if not isinstance(contents, list) or not contents:
            raise _violation("contents", "contents is not specified")
        for i, content in enumerate(contents):
            self._validate_content(content, f"contents[{i}]", vertex=vertex)
        self._validate_turns(contents)
        system = body.get("systemInstruction", body.get("system_instruction"))
        if system is not None:
            if not isinstance(system, dict):
                raise _invalid("Invalid value at 'system_instruction' (type.googleapis.com/Content)")
            self._validate_content({**system, "role": "user"}, "system_instruction", vertex=False)
        names = self._validate_tools(body.get("tools"))
        self._validate_tool_config(body.get("toolConfig", body.get("tool_config")), names)
        self._validate_generation(body.get("generationConfig", body.get("generation_config")))

    def _validate_content(self, content: Any, where: str, *, vertex: bool) -> None:
        if not isinstance(content, dict):
            raise _invalid(f"Invalid value at '{where}' (type.googleapis.com/Content)")
        _check_keys(content, frozenset({"role", "parts"}), where)
        role = content.get("role")
        if (role is None and vertex) or (role is not None and role not in ("user", "model")):
            raise _invalid("Please use a valid role: user, model.")
        parts = content.get("parts")
        if not isinstance(parts, list) or not parts:
            raise _violation(f"{where}.parts", "contents.parts must not be empty.")
        for j, part in enumerate(parts):
            self._validate_part(part, f"{where}.parts[{j}]", role or "user")

    @staticmethod
    def _validate_part(part: Any, where: str, role: str) -> None:
        if not isinstance(part, dict):
            raise _invalid(f"Invalid value at '{where}' (type.googleapis.com/Part)")
        data = [key for key in part if key in _PART_DATA]
        for key in part:
            if key not in _PART_DATA and key not in _PART_META:
                raise _unknown(key, where)
        if not data:
            raise _violation(where, "required oneof field 'data' must have one initialized field")
        if len(data) > 1:
            raise _invalid(
                f"Invalid value at '{where}' (oneof), oneof field 'data' is already set. "
                f"Cannot set '{_PART_DATA[data[1]]}'"
            )
        value = part[data[0]]
        kind = _PART_DATA[data[0]]
        if kind == "text":
            if not isinstance(value, str):
                raise _invalid(f"Invalid value at '{where}.text' (TYPE_STRING)")
            if not value:
                raise _invalid(_EMPTY_TEXT)
        elif kind == "inline_data":
            if not isinstance(value, dict) or not isinstance(
                value.get("mimeType", value.get("mime_type")), str
            ):
                raise _violation(f"{where}.inline_data.mime_type", "mime_type is required")
            try:
                base64.b64decode(value.get("data", ""), validate=True)
            except (binascii.Error, ValueError, TypeError):
                raise _invalid(
                    f"Invalid value at '{where}.inline_data.data' (TYPE_BYTES), Base64 decoding failed"
                ) from None
        elif kind == "file_data":
            if not isinstance(value, dict) or not isinstance(
                value.get("fileUri", value.get("file_uri")), str
            ):
                raise _violation(f"{where}.file_data.file_uri", "file_uri is required")
        elif kind == "function_call":
            if role != "model":
                raise _invalid("Please ensure that function call turns come from the model role.")
            if not isinstance(value, dict) or not value.get("name"):
                raise _violation(f"{where}.function_call.name", "Name cannot be empty.")
            _check_keys(value, frozenset({"id", "name", "args"}), f"{where}.function_call")
            if "args" in value and not isinstance(value["args"], dict):
                raise _invalid(
                    f"Invalid value at '{where}.function_call.args' "
                    "(type.googleapis.com/google.protobuf.Struct)"
                )
        elif kind == "function_response":
            if not isinstance(value, dict) or not value.get("name"):
                raise _violation(f"{where}.function_response.name", "Name cannot be empty.")
            _check_keys(
                value,
                frozenset({"id", "name", "response", "parts", "willContinue", "scheduling"}),
                f"{where}.function_response",
            )
            if not isinstance(value.get("response"), dict):
                raise _invalid(
                    f"Invalid value at '{where}.function_response.response' "
                    f"(type.googleapis.com/google.protobuf.Struct), {json.dumps(value.get('response'))}"
                )

    @staticmethod
    def _validate_turns(contents: list[dict[str, Any]]) -> None:
        """Each function-call turn is answered, in the next turn, by as many function responses."""

        def names(content: dict[str, Any], camel: str, snake: str) -> list[str]:
            found = (part.get(camel, part.get(snake)) for part in content["parts"])
            return [value.get("name") for value in found if isinstance(value, dict)]

        for index, content in enumerate(contents):
            responses = names(content, "functionResponse", "function_response")
            previous = contents[index - 1] if index > 0 else None
            asked = names(previous, "functionCall", "function_call") if previous is not None else []
            if responses and not asked:
                raise _invalid(
                    "Please ensure that function response turn comes immediately after a function call turn."
                )
            if asked:
                if len(responses) != len(asked):
                    raise _invalid(
                        "Please ensure that the number of function response parts is equal to the number of "
                        "function call parts of the function call turn."
                    )
                if sorted(responses) != sorted(asked):
                    raise _invalid(
                        f"* GenerateContentRequest.contents[{index}]: function response names {responses} "
                        f"do not match the function calls {asked} of the previous turn\n"
                    )

    def _validate_schema(self, schema: Any, where: str, *, top: bool) -> None:
        if not isinstance(schema, dict):
            raise _invalid(f"Invalid value at '{where}' (type.googleapis.com/Schema)")
        _check_keys(schema, _SCHEMA_KEYS, where)
        kind = schema.get("type")
        if kind is not None and (not isinstance(kind, str) or kind.upper() not in _SCHEMA_TYPES):
            raise _invalid(f"Invalid value at '{where}.type' (type.googleapis.com/Type), {json.dumps(kind)}")
        kind = kind.upper() if isinstance(kind, str) else None
        if kind == "OBJECT" and top and not schema.get("properties"):
            raise _violation(f"{where}.properties", "should be non-empty for OBJECT type")
        fmt = schema.get("format")
        if fmt is not None and kind in _FORMATS and fmt not in _FORMATS[kind]:
            allowed = " and ".join(f"'{f}'" for f in _FORMATS[kind])
            raise _violation(f"{where}.format", f"only {allowed} are supported for {kind} type")
        enum = schema.get("enum")
        if enum is not None and (not isinstance(enum, list) or not all(isinstance(v, str) for v in enum)):
            raise _invalid(f"Invalid value at '{where}.enum' (TYPE_STRING)")
        properties = schema.get("properties")
        if properties is not None:
            if not isinstance(properties, dict):
                raise _invalid(f"Invalid value at '{where}.properties'")
            for name, sub in properties.items():
                self._validate_schema(sub, f"{where}.properties[{name}].value", top=False)
            required = schema.get("required", [])
            missing = [name for name in required if name not in properties]
            if missing:
                raise _violation(f"{where}.required", f"property {missing[0]!r} is not defined in properties")
        if "items" in schema:
            self._validate_schema(schema["items"], f"{where}.items", top=False)
        for k, sub in enumerate(schema.get("anyOf") or []):
            self._validate_schema(sub, f"{where}.any_of[{k}]", top=False)

    def _validate_tools(self, tools: Any) -> list[str]:
        names: list[str] = []
        if tools is None:
            return names
        if not isinstance(tools, list):
            raise _invalid("Invalid value at 'tools' (type.googleapis.com/Tool)")
        for i, tool in enumerate(tools):
            if not isinstance(tool, dict):
                raise _invalid(f"Invalid value at 'tools[{i}]' (type.googleapis.com/Tool)")
            _check_keys(tool, _TOOL_KEYS, f"tools[{i}]")
            declarations = tool.get("functionDeclarations", tool.get("function_declarations", []))
            for k, declaration in enumerate(declarations):
                where = f"tools[{i}].function_declarations[{k}]"
                if not isinstance(declaration, dict):
                    raise _invalid(f"Invalid value at '{where}' (type.googleapis.com/FunctionDeclaration)")
                _check_keys(declaration, _DECLARATION_KEYS, where)
                name = declaration.get("name")
                if not isinstance(name, str) or not _FUNCTION_NAME.match(name):
                    raise _violation(
                        f"{where}.name",
                        "Invalid function name. Must start with a letter or an underscore. Must be a-z, A-Z, "
                        "0-9, or contain underscores, dots, colons and dashes, with a maximum length of 64.",
                    )
                if "parameters" in declaration and "parametersJsonSchema" in declaration:
                    raise _violation(
                        f"{where}", "parameters and parameters_json_schema are mutually exclusive"
                    )
                if "parameters" in declaration:
                    self._validate_schema(declaration["parameters"], f"{where}.parameters", top=True)
                names.append(name)
        return names

    @staticmethod
    def _validate_tool_config(config: Any, names: list[str]) -> None:
        if config is None:
            return
        if not isinstance(config, dict):
            raise _invalid("Invalid value at 'tool_config' (type.googleapis.com/ToolConfig)")
        _check_keys(
            config,
            frozenset({"functionCallingConfig", "function_calling_config", "retrievalConfig"}),
            "tool_config",
        )
        calling = config.get("functionCallingConfig", config.get("function_calling_config"))
        if calling is None:
            return
        _check_keys(
            calling,
            frozenset({"mode", "allowedFunctionNames", "allowed_function_names"}),
            "tool_config.function_calling_config",
        )
        mode = calling.get("mode", "AUTO")
        if mode not in _MODES:
            raise _invalid(
                f"Invalid value at 'tool_config.function_calling_config.mode' "
                f"(type.googleapis.com/FunctionCallingConfig.Mode), {json.dumps(mode)}"
            )
        allowed = calling.get("allowedFunctionNames", calling.get("allowed_function_names"))
        if allowed is not None:
            if mode not in ("ANY", "VALIDATED"):
                raise _violation(
                    "tool_config.function_calling_config.allowed_function_names",
                    "allowed_function_names may only be set when mode is ANY or VALIDATED",
                )
            unknown = [name for name in allowed if name not in names]
            if unknown:
                raise _violation(
                    "tool_config.function_calling_config.allowed_function_names",
                    f"function {unknown[0]!r} is not declared in tools",
                )

    @staticmethod
    def _validate_generation(config: Any) -> None:
        if config is None:
            return
        if not isinstance(config, dict):
            raise _invalid("Invalid value at 'generation_config' (type.googleapis.com/GenerationConfig)")
        _check_keys(config, _GENERATION_KEYS, "generation_config")
        ranges = {
            "temperature": (0, 2),
            "topP": (0, 1),
            "candidateCount": (1, 8),
            "maxOutputTokens": (1, 65536),
        }
        for key, (low, high) in ranges.items():
            if key in config:
                value = config[key]
                if not _number(value) or not low <= value <= high:
                    raise _violation(
                        f"generation_config.{key}", f"{key} must be between {low} and {high}, got {value!r}"
                    )
        for key in ("candidateCount", "maxOutputTokens", "topK", "seed", "logprobs"):
            if key in config and (not isinstance(config[key], int) or isinstance(config[key], bool)):
                raise _invalid(
                    f"Invalid value at 'generation_config.{key}' (TYPE_INT32), {json.dumps(config[key])}"
                )
        stops = config.get("stopSequences", [])
        if not isinstance(stops, list) or len(stops) > 5 or not all(isinstance(s, str) for s in stops):
            raise _violation(
                "generation_config.stop_sequences", "at most 5 stop sequences (strings) are allowed"
            )
        mime = config.get("responseMimeType")
        if mime is not None and mime not in _MIME_TYPES:
            raise _violation(
                "generation_config.response_mime_type",
                f"allowed mimetypes are {', '.join(repr(m) for m in _MIME_TYPES)}",
            )
        if "responseSchema" in config and "responseJsonSchema" in config:
            raise _violation(
                "generation_config", "response_schema and response_json_schema are mutually exclusive"
            )
        if ("responseSchema" in config or "responseJsonSchema" in config) and mime != "application/json":
            raise _violation(
                "generation_config.response_mime_type",
                "response_mime_type must be application/json when a response schema is set",
            )
        if "logprobs" in config and config.get("responseLogprobs") is not True:
            raise _violation("generation_config.logprobs", "logprobs requires response_logprobs to be true")
        thinking = config.get("thinkingConfig")
        if thinking is not None:
            _check_keys(
                thinking,
                frozenset({"includeThoughts", "thinkingBudget", "thinkingLevel"}),
                "generation_config.thinking_config",
            )

    # ---------------------------------------------------------------------------- embeddings

    @staticmethod
    def _batch_embed(body: Any, name: str) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise _invalid("Invalid JSON payload received. Expected an object.")
        _check_keys(body, frozenset({"requests"}), None)
        requests = body.get("requests")
        if not isinstance(requests, list) or not requests:
            raise _invalid("* BatchEmbedContentsRequest.requests: must not be empty\n")
        embeddings = []
        for i, item in enumerate(requests):
            where = f"requests[{i}]"
            if not isinstance(item, dict):
                raise _invalid(f"Invalid value at '{where}'")
            _check_keys(
                item, frozenset({"model", "content", "taskType", "title", "outputDimensionality"}), where
            )
            if item.get("model") != name:
                raise _invalid(
                    f"* BatchEmbedContentsRequest.{where}.model: Model names should match. "
                    f"Expected {name!r}, got {item.get('model')!r}\n"
                )
            content = item.get("content")
            text = _text_of(content.get("parts")) if isinstance(content, dict) else ""
            if not text:
                raise _invalid(f"* BatchEmbedContentsRequest.{where}.content: content is not specified\n")
            dimensions = item.get("outputDimensionality", 8)
            embeddings.append({"values": _vector(text, dimensions)})
        return {"embeddings": embeddings}

    @staticmethod
    def _predict(body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise _invalid("Invalid JSON payload received. Expected an object.")
        _check_keys(body, frozenset({"instances", "parameters"}), None)
        instances = body.get("instances")
        if not isinstance(instances, list) or not instances:
            raise _invalid("instances must not be empty")
        parameters = body.get("parameters") or {}
        _check_keys(parameters, frozenset({"outputDimensionality", "autoTruncate"}), "parameters")
        dimensions = parameters.get("outputDimensionality", 8)
        predictions = []
        for i, instance in enumerate(instances):
            if not isinstance(instance, dict) or not isinstance(instance.get("content"), str):
                raise _invalid(f"instances[{i}].content is required")
            _check_keys(instance, frozenset({"content", "task_type", "title"}), f"instances[{i}]")
            text = instance["content"]
            predictions.append(
                {
                    "embeddings": {
                        "values": _vector(text, dimensions),
                        "statistics": {"truncated": False, "token_count": estimate_tokens(text)},
                    }
                }
            )
        return {
            "predictions": predictions,
            "metadata": {"billableCharacterCount": sum(len(i["content"]) for i in instances)},
        }

    # ------------------------------------------------------------------------- wire format

    def new_request_id(self) -> str:
        return secrets.token_hex(8)

    def response_headers(self, request_id: str) -> dict[str, str]:
        return {"vary": "Origin, X-Origin, Referer", "server-timing": f"gfet4t7; dur={len(request_id)}"}

    def error_body(self, status: int, request_id: str) -> dict[str, Any]:
        name, message = _ERRORS.get(status, ("UNKNOWN", "Unknown error."))
        error: dict[str, Any] = {"code": status, "message": message, "status": name}
        if status == 429:
            error["details"] = [
                {
                    "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                    "violations": [
                        {"quotaMetric": "generativelanguage.googleapis.com/generate_content_requests"}
                    ],
                },
                {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "13s"},
            ]
        return {"error": error}

    def default_text(self, body: dict[str, Any]) -> str:
        for content in reversed(body["contents"]):
            if content.get("role", "user") == "user" and (text := _text_of(content["parts"])):
                return "fake: " + text
        return "fake: "

    def prompt_words(self, body: dict[str, Any]) -> int:
        system = body.get("systemInstruction", body.get("system_instruction")) or {}
        texts = [_text_of(system.get("parts"))]
        for content in body["contents"]:
            texts.append(_text_of(content["parts"]))
            texts.extend(
                json.dumps(part["functionResponse"]["response"])
                for part in content["parts"]
                if isinstance(part, dict) and "functionResponse" in part
            )
        return max(1, estimate_tokens(*texts))

    @staticmethod
    def _usage(outcome: Outcome, completion: int | None) -> dict[str, Any]:
        usage: dict[str, Any] = {"promptTokenCount": outcome.prompt_tokens}
        if completion is not None:
            usage["candidatesTokenCount"] = completion
        usage["totalTokenCount"] = outcome.prompt_tokens + (completion or 0)
        if outcome.cached_tokens:
            usage["cachedContentTokenCount"] = outcome.cached_tokens
        usage["promptTokensDetails"] = [{"modality": "TEXT", "tokenCount": outcome.prompt_tokens}]
        return usage

    @staticmethod
    def _call_parts(outcome: Outcome) -> list[dict[str, Any]]:
        parts: list[dict[str, Any]] = []
        for k, (name, args) in enumerate(outcome.calls):
            part: dict[str, Any] = {"functionCall": {"name": name, "args": args}}
            if k == 0:
                # Thinking models sign the first call of a turn; the signature must come back with it.
                part["thoughtSignature"] = base64.b64encode(secrets.token_bytes(24)).decode()
            parts.append(part)
        return parts

    def completion_body(self, body: dict[str, Any], outcome: Outcome) -> dict[str, Any]:
        parts: list[dict[str, Any]] = []
        if outcome.text:
            parts.append({"text": outcome.text})
        parts.extend(self._call_parts(outcome))
        candidate: dict[str, Any] = {
            "content": {"parts": parts, "role": "model"},
            "finishReason": outcome.finish_reason or "STOP",
            "index": 0,
        }
        if not parts:
            candidate["content"] = {"role": "model"}
        return {
            "candidates": [candidate],
            "usageMetadata": self._usage(outcome, outcome.completion_tokens),
            "modelVersion": body[" model"],
            "responseId": secrets.token_urlsafe(16),
        }

    def stream_events(self, body: dict[str, Any], outcome: Outcome) -> list[bytes]:
        response_id = secrets.token_urlsafe(16)
        pieces: list[list[dict[str, Any]]] = [[{"text": piece}] for piece in split_text(outcome.text or "")]
        pieces.extend([part] for part in self._call_parts(outcome))
        if not pieces:
            pieces = [[]]
        events = []
        for i, parts in enumerate(pieces):
            last = i == len(pieces) - 1
            candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}} if parts else {}
            if last:
                candidate["finishReason"] = outcome.finish_reason or "STOP"
            candidate["index"] = 0
            payload = {
                "candidates": [candidate],
                # Intermediate events carry the prompt count only; the last one has the whole bill.
                "usageMetadata": self._usage(outcome, outcome.completion_tokens if last else None),
                "modelVersion": body[" model"],
                "responseId": response_id,
            }
            events.append(b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\r\n\r\n")
        return events
