"""A fake Azure OpenAI resource speaking the wire format of reference §2.

Serves chat on both URL surfaces: ``POST /openai/deployments/{deployment}/chat/completions?api-version=``
(the version is required; dated versions before 2024-09-01 reject ``stream_options`` as they do on
Azure) and ``POST /openai/v1/chat/completions`` (deployment as body ``model``, no version or
``api-version=preview``); ``embeddings`` and legacy ``completions`` on both surfaces answer as
``FakeOpenAI``'s do. Authentication is an ``api-key`` header or an Entra ID
``Authorization: Bearer`` token, with Azure's own 401 bodies. Replies carry Azure's content-filter
annotations: ``prompt_filter_results`` on the reply and as a stream's first, choice-less chunk
(``"id": ""``, ``"created": 0``), and ``content_filter_results`` on every choice. Errors use Azure's
``{"error": {"code", "message"}}`` body; ``content_filter_error()`` builds the 400 of a prompt the
filter blocked. Request bodies are validated like OpenAI's (``FakeOpenAI``).
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeAlias

from aiohttp import web

from .behaviours import Behaviour, Error, Outcome
from .fake_openai import FakeOpenAI
from .server import ApiError

Handler: TypeAlias = Callable[[web.Request], Awaitable[web.StreamResponse]]

_DATED_VERSION = re.compile(r"\d{4}-\d{2}-\d{2}(-preview)?")
_STREAM_OPTIONS_SINCE = "2024-09-01"

_SAFE = {"filtered": False, "severity": "safe"}
SAFE_FILTERS: dict[str, Any] = {"hate": _SAFE, "self_harm": _SAFE, "sexual": _SAFE, "violence": _SAFE}
PROMPT_FILTERS: list[dict[str, Any]] = [
    {
        "prompt_index": 0,
        "content_filter_results": {**SAFE_FILTERS, "jailbreak": {"filtered": False, "detected": False}},
    }
]

_ERRORS: dict[int, tuple[str, str]] = {
    400: ("BadRequest", "Invalid request."),
    401: (
        "401",
        "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid "
        "key for an active subscription and use a correct regional API endpoint for your resource.",
    ),
    403: ("403", "Public access is disabled. Please configure private endpoint."),
    404: (
        "DeploymentNotFound",
        "The API deployment for this resource does not exist. If you created the deployment within the "
        "last 5 minutes, please wait a moment and try again.",
    ),
    429: (
        "429",
        "Requests to the ChatCompletions_Create Operation under Azure OpenAI API version 2024-10-21 have "
        "exceeded token rate limit of your current OpenAI S0 pricing tier. Please retry after 7 seconds.",
    ),
    500: ("InternalServerError", "The server had an error while processing your request. Sorry about that!"),
    503: (
        "ServiceUnavailable",
        "The service is temporarily unable to process your request. Please try again later.",
    ),
}


def azure_error(status: int, code: str, message: str, **extra: Any) -> ApiError:
    return ApiError(status, {"error": {"code": code, "message": message, **extra}})


def content_filter_error() -> Error:
    """The 400 Azure answers when the content filter blocks the prompt (a jailbreak attempt here)."""
    return Error(
        400,
        body={
            "error": {
                "message": "The response was filtered due to the prompt triggering Azure OpenAI's content "
                "management policy. Please modify your prompt and retry.",
                "type": None,
                "param": "prompt",
                "code": "content_filter",
                "status": 400,
                "innererror": {
                    "code": "ResponsibleAIPolicyViolation",
                    "content_filter_result": {
                        **SAFE_FILTERS,
                        "jailbreak": {"filtered": True, "detected": True},
                    },
                },
            }
        },
    )


class FakeAzure(FakeOpenAI):
    """Fake ``https://NAME.openai.azure.com``; ``base_url`` is the resource endpoint (no path)."""

    base_path = ""

    def __init__(
        self,
        *,
        api_key: str | None = None,
        bearer_token: str | None = None,
        default: Behaviour | None = None,
        deployments: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(api_key=api_key, default=default)
        #: The Entra ID token accepted as `Authorization: Bearer`; None = bearer auth is refused.
        self.bearer_token = bearer_token
        #: deployment name -> the model it serves (what replies report as `model`).
        self.deployments = dict(deployments or {"gpt-4o-mini": "gpt-4o-mini-2024-07-18"})

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/openai/deployments/{deployment}/chat/completions", self._dated_chat),
            web.post("/openai/deployments/{deployment}/embeddings", self._dated(self._embeddings)),
            web.post("/openai/deployments/{deployment}/completions", self._dated(self._completions)),
            web.post("/openai/v1/chat/completions", self._v1_chat),
            web.post("/openai/v1/embeddings", self._v1(self._embeddings)),
            web.post("/openai/v1/completions", self._v1(self._completions)),
            web.route("*", "/{tail:.*}", self._azure_not_found),
        ]

    def _dated(self, handler: Handler) -> Handler:
        """An OpenAI route (embeddings, completions) on the dated surface: api-version checked first."""
        return self._versioned(handler, self._check_dated_version)

    def _v1(self, handler: Handler) -> Handler:
        """An OpenAI route on the v1 surface: no api-version, or `preview`."""
        return self._versioned(handler, self._check_v1_version)

    def _versioned(self, handler: Handler, check: Callable[[str | None], None]) -> Handler:
        """`handler` behind `check` of the request's api-version (Azure's error when it fails)."""

        async def versioned(request: web.Request) -> web.StreamResponse:
            try:
                check(request.query.get("api-version"))
            except ApiError as error:
                await self.record(request)
                return self.api_error_response(error, self.new_request_id())
            return await handler(request)

        return versioned

    @staticmethod
    def _check_dated_version(version: str | None) -> None:
        if version is None:
            raise azure_error(
                400,
                "MissingApiVersionParameter",
                "The api-version query parameter (?api-version=) is required for all requests.",
            )
        if not _DATED_VERSION.fullmatch(version):
            raise azure_error(404, "404", "Resource not found")

    @staticmethod
    def _check_v1_version(version: str | None) -> None:
        if version not in (None, "preview", "latest"):
            raise azure_error(400, "BadRequest", "API version not supported")

    async def _dated_chat(self, request: web.Request) -> web.StreamResponse:
        _, body = await self.record(request)
        request_id = self.new_request_id()
        try:
            self._authenticate(request)
            version = request.query.get("api-version")
            self._check_dated_version(version)
            assert version is not None
            deployment = request.match_info["deployment"]
            if isinstance(body, dict) and "stream_options" in body and version[:10] < _STREAM_OPTIONS_SINCE:
                raise azure_error(400, "BadRequest", "Unrecognized request argument supplied: stream_options")
            # The deployment in the path selects the model; body `model` is optional here.
            served = self._serve_as(
                deployment, {"model": deployment, **body} if isinstance(body, dict) else body
            )
        except ApiError as error:
            return self.api_error_response(error, request_id)
        return await self.serve_chat(request, served, request_id)

    async def _v1_chat(self, request: web.Request) -> web.StreamResponse:
        _, body = await self.record(request)
        request_id = self.new_request_id()
        try:
            self._authenticate(request)
            self._check_v1_version(request.query.get("api-version"))
            deployment = body.get("model") if isinstance(body, dict) else None
            served = self._serve_as(deployment if isinstance(deployment, str) else "", body)
        except ApiError as error:
            return self.api_error_response(error, request_id)
        return await self.serve_chat(request, served, request_id)

    def _serve_as(self, deployment: str, body: Any) -> dict[str, Any]:
        """Validate the body and return it as the deployment's model sees it (`model` = served model)."""
        self._validate(body)
        if deployment not in self.deployments:
            message, code = _ERRORS[404][1], _ERRORS[404][0]
            raise azure_error(404, code, message)
        return {**body, "model": self.deployments[deployment]}

    async def _azure_not_found(self, request: web.Request) -> web.StreamResponse:
        await self.record(request)
        return self.api_error_response(azure_error(404, "404", "Resource not found"), self.new_request_id())

    def _authenticate(self, request: web.Request) -> None:
        key = request.headers.get("api-key")
        authorization = request.headers.get("Authorization")
        if key is not None:
            if not key.strip() or (self.api_key is not None and key != self.api_key):
                raise azure_error(401, *_ERRORS[401])
            return
        if authorization is not None:
            scheme, _, token = authorization.partition(" ")
            if scheme.lower() != "bearer" or self.bearer_token is None or token != self.bearer_token:
                raise azure_error(
                    401,
                    "PermissionDenied",
                    "Unauthorized. Access token is missing, invalid, audience is incorrect "
                    "(https://cognitiveservices.azure.com), or have expired.",
                )
            return
        raise azure_error(401, *_ERRORS[401])

    # ------------------------------------------------------------------------- wire format

    def new_request_id(self) -> str:
        return (
            secrets.token_hex(4)
            + "-"
            + secrets.token_hex(2)
            + "-"
            + secrets.token_hex(2)
            + "-"
            + secrets.token_hex(6)
        )

    def response_headers(self, request_id: str) -> dict[str, str]:
        return {
            "apim-request-id": request_id,
            "x-request-id": request_id,
            "x-ms-region": "Sweden Central",
            "x-ratelimit-remaining-requests": "99",
            "x-ratelimit-remaining-tokens": "99000",
        }

    def error_body(self, status: int, request_id: str) -> dict[str, Any]:
        code, message = _ERRORS.get(status, (str(status), "Request failed."))
        return {"error": {"code": code, "message": message}}

    def completion_body(self, body: dict[str, Any], outcome: Outcome) -> dict[str, Any]:
        reply = super().completion_body(body, outcome)
        reply.pop("service_tier", None)
        reply["prompt_filter_results"] = PROMPT_FILTERS
        for choice in reply["choices"]:
            choice["content_filter_results"] = SAFE_FILTERS
        return reply

    def stream_events(self, body: dict[str, Any], outcome: Outcome) -> list[bytes]:
        # Azure's first event: no choices, empty id/model, created 0 — only the prompt's filter results.
        first = {
            "choices": [],
            "created": 0,
            "id": "",
            "model": "",
            "object": "",
            "prompt_filter_results": PROMPT_FILTERS,
        }
        events = [b"data: " + json.dumps(first, separators=(",", ":")).encode() + b"\n\n"]
        for event in super().stream_events(body, outcome):
            payload = event[len(b"data: ") : -2]
            if payload == b"[DONE]":
                events.append(event)
                continue
            chunk = json.loads(payload)
            chunk.pop("service_tier", None)
            for choice in chunk["choices"]:
                # The role chunk and the closing chunk carry empty results, content chunks full ones.
                text = choice["delta"].get("content")
                choice["content_filter_results"] = SAFE_FILTERS if text else {}
            events.append(b"data: " + json.dumps(chunk, separators=(",", ":")).encode() + b"\n\n")
        return events
