"""A fake Vertex AI serving Anthropic Claude models: the Messages API in Vertex's envelope (reference §3.6).

Serves ``POST /v1/projects/{p}/locations/{l}/publishers/anthropic/models/{m}:rawPredict`` (JSON)
and ``:streamRawPredict`` (Anthropic SSE), behind OAuth bearer tokens issued by the fake token
endpoint ``POST /token`` (google_oauth.py). The body is checked for the Vertex envelope (exactly
``anthropic_version: "vertex-2023-10-16"``, no ``model`` since the URL names it, ``stream`` only
on ``:streamRawPredict``), then validated by ``FakeAnthropic`` as a Messages body. As on Vertex,
errors the platform raises (401, 403, 404, 429) use Google's error envelope while errors from
the model (400, 500, 529) use Anthropic's.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from .behaviours import Behaviour
from .fake_anthropic import FakeAnthropic, _invalid
from .google_oauth import GoogleOAuth, GoogleOAuthServer, google_error
from .server import ApiError

VERTEX_VERSION = "vertex-2023-10-16"
_PLATFORM_ERRORS: dict[int, tuple[str, str]] = {
    401: ("UNAUTHENTICATED", "Request had invalid authentication credentials."),
    403: ("PERMISSION_DENIED", "Permission 'aiplatform.endpoints.predict' denied on resource."),
    404: (
        "NOT_FOUND",
        "Publisher Model `projects/fake-project/locations/us-east5/publishers/anthropic/models/x` not found.",
    ),
    429: (
        "RESOURCE_EXHAUSTED",
        "Quota exceeded for aiplatform.googleapis.com/online_prediction_requests_per_base_model "
        "with base model: anthropic-claude. Please submit a quota increase request.",
    ),
}


class FakeVertexAnthropic(GoogleOAuthServer, FakeAnthropic):
    """Fake ``{location}-aiplatform.googleapis.com`` for ``publishers/anthropic`` models."""

    def __init__(self, *, default: Behaviour | None = None, project: str = "fake-project") -> None:
        super().__init__(default=default)
        self.project = project
        self.oauth = GoogleOAuth(project_id=project)

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/token", self._token),
            web.post(
                "/v1/projects/{project}/locations/{location}/publishers/anthropic/models/{name}",
                self._predict,
            ),
            web.route("*", "/{tail:.*}", self._vertex_not_found),
        ]

    async def _vertex_not_found(self, request: web.Request) -> web.Response:
        await self.record(request)
        return web.Response(
            status=404, text="<html><body>404. Not Found</body></html>", content_type="text/html"
        )

    async def _predict(self, request: web.Request) -> web.StreamResponse:
        _, body = await self.record(request)
        request_id = self.new_request_id()
        model, _, action = request.match_info["name"].rpartition(":")
        try:
            self.oauth.authorize(request)
            if request.match_info["project"] != self.project:
                raise google_error(403, _PLATFORM_ERRORS[403][1], "PERMISSION_DENIED")
            if action not in ("rawPredict", "streamRawPredict"):
                raise google_error(404, f"Method {action!r} is not found.", "NOT_FOUND")
            messages_body = self._unwrap(body, model, streaming=action == "streamRawPredict")
        except ApiError as error:
            if "type" in error.body:  # Anthropic-shaped: from the model, not the platform
                error.body["request_id"] = request_id
            return self.api_error_response(error, request_id)
        return await self.serve_chat(request, messages_body, request_id)

    def _unwrap(self, body: Any, model: str, *, streaming: bool) -> dict[str, Any]:
        """The Messages body inside Vertex's envelope, with `model` put back from the URL."""
        if not isinstance(body, dict):
            raise _invalid("There was an error parsing the body of your request: expected a JSON object")
        if "model" in body:
            raise _invalid("model: Extra inputs are not permitted")
        version = body.get("anthropic_version")
        if version is None:
            raise _invalid("anthropic_version: Field required")
        if version != VERTEX_VERSION:
            raise _invalid(f"anthropic_version: Input should be '{VERTEX_VERSION}'")
        if (body.get("stream") is True) != streaming:
            raise _invalid("stream: must be true on :streamRawPredict and absent or false on :rawPredict")
        inner = {key: value for key, value in body.items() if key != "anthropic_version"}
        inner["model"] = model
        self._validate(inner)
        return inner

    def error_body(self, status: int, request_id: str) -> dict[str, Any]:
        if status in _PLATFORM_ERRORS:
            name, message = _PLATFORM_ERRORS[status]
            return {"error": {"code": status, "message": message, "status": name}}
        return super().error_body(status, request_id)
