"""Vertex AI: Gemini and Anthropic Claude models on Google Cloud, called with OAuth2 bearer tokens.

One deployment serves one model, and the model id chooses the translation:
- a Gemini id (`gemini-2.5-flash`, ...) sends the same `GenerateContentRequest` as the `gemini`
  adapter (its pure functions are reused) to `.../publishers/google/models/{m}:generateContent`
  (`:streamGenerateContent?alt=sse` for streams), reference §4.8;
- a Claude id (`claude-...`) sends the Anthropic Messages body built by the `anthropic` adapter
  in Vertex's envelope (reference §3.6): no `model` in the body, `anthropic_version:
  "vertex-2023-10-16"`, to `.../publishers/anthropic/models/{m}:rawPredict` (`:streamRawPredict`).

Credentials are a service-account (or authorized-user) JSON, `vertex_credentials`; `sign()` adds
`authorization: Bearer <token>` per attempt from a token cached and refreshed by
`upstream/gcp_auth.py` through the deployment's transport. The host is
`https://{location}-aiplatform.googleapis.com` (`aiplatform.googleapis.com` for `global`);
`api_base` replaces it.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from ..errors import ConfigError, GatewayError, UpstreamProtocolError
from ..types import (
    ChatRequest,
    ChatResponse,
    EmbeddingsRequest,
    EmbeddingsResponse,
    UpstreamReply,
    UpstreamRequest,
    Usage,
)
from ..upstream.gcp_auth import Credentials, CredentialsError, TokenSource, parse_credentials
from ._translate import error_json, reply_json
from .anthropic import AnthropicAdapter
from .base import ALL_CHAT, EMBEDDINGS, Adapter, StreamTranslator
from .gemini import (
    GeminiStream,
    build_generate_body,
    embedding_texts,
    estimate_tokens,
    google_error,
    is_google_error,
    map_reply_error,
    parse_generate_response,
    parse_vectors,
)

if TYPE_CHECKING:
    from ..config.schema import ModelEntry

_DEFAULT_LOCATION = "us-central1"
_CLAUDE_VERSION = "vertex-2023-10-16"
_CREDENTIALS_ENV = "GOOGLE_APPLICATION_CREDENTIALS"
_LOCATION_RE = re.compile(r"^[a-z][a-z0-9-]*$")
# Project ids, project numbers and the older domain-scoped ids ("example.com:project").
_PROJECT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.:-]*$")


@dataclass(frozen=True, slots=True)
class _Settings:
    project: str
    location: str
    credentials: Credentials


def _settings(entry: ModelEntry, path: str) -> _Settings:
    """The entry's project, location and parsed credentials; ConfigError quoting the field otherwise."""
    text = entry.vertex_credentials
    if text is None:
        env_path = os.environ.get(_CREDENTIALS_ENV)
        if not env_path:
            raise ConfigError(
                f"{path}.vertex_credentials: required for provider vertex (a service-account JSON, "
                f"given as file:/path or env:NAME), or set {_CREDENTIALS_ENV}"
            )
        try:
            text = Path(env_path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(
                f"{path}.vertex_credentials: cannot read {_CREDENTIALS_ENV} file {env_path}: "
                f"{exc.strerror or exc}"
            ) from exc
    try:
        credentials = parse_credentials(text)
    except CredentialsError as exc:
        raise ConfigError(f"{path}.vertex_credentials: {exc}") from None
    project = entry.vertex_project or credentials.project_id
    if not project:
        raise ConfigError(
            f"{path}.vertex_project: required for provider vertex (the credentials name no project either)"
        )
    if not _PROJECT_RE.match(project):
        raise ConfigError(f"{path}.vertex_project: {project!r} is not a Google Cloud project id")
    location = entry.vertex_location or _DEFAULT_LOCATION
    if not _LOCATION_RE.match(location):
        raise ConfigError(
            f"{path}.vertex_location: {location!r} is not a Google Cloud location "
            "(e.g. us-central1, europe-west4, global)"
        )
    return _Settings(project, location, credentials)


def is_claude(model: str) -> bool:
    return model.startswith("claude")


class VertexAdapter(Adapter):
    provider = "vertex"
    # Embeddings are served for Google's own models; a Claude deployment answers them with a 400.
    capabilities = ALL_CHAT | {EMBEDDINGS}
    needs_signing = True

    @staticmethod
    def check(entry: ModelEntry, path: str) -> None:
        _settings(entry, path)

    def __init__(self, entry: ModelEntry) -> None:
        super().__init__(entry)
        settings = _settings(entry, f"model {entry.name!r}")
        self.project, self.location = settings.project, settings.location
        self.tokens = TokenSource(settings.credentials)
        model = entry.upstream_model
        self.model_id = model
        if entry.api_base:
            host = entry.api_base.rstrip("/").removesuffix("/v1")
        elif settings.location == "global":
            host = "https://aiplatform.googleapis.com"
        else:
            host = f"https://{settings.location}-aiplatform.googleapis.com"
        publisher = "anthropic" if is_claude(model) else "google"
        prefix = (
            f"{host}/v1/projects/{settings.project}/locations/{settings.location}"
            f"/publishers/{publisher}/models/{model}"
        )
        # Claude's body comes from the Anthropic adapter; only the envelope differs on Vertex.
        self.claude = AnthropicAdapter(entry) if is_claude(model) else None
        if self.claude is not None:
            self.url, self.stream_url = f"{prefix}:rawPredict", f"{prefix}:streamRawPredict"
        else:
            self.url = f"{prefix}:generateContent"
            self.stream_url = f"{prefix}:streamGenerateContent?alt=sse"
        self.embed_url = f"{prefix}:predict"
        headers = {"content-type": "application/json", "accept-encoding": "identity"}
        headers.update(entry.headers)
        self.headers = headers
        # (token, headers with its bearer): rebuilt once per token, not once per call.
        self._signed: tuple[str, dict[str, str]] | None = None

    async def sign(self, request: UpstreamRequest, transport: Any) -> UpstreamRequest:
        token = await self.tokens.token(transport)
        signed = self._signed
        if signed is None or signed[0] != token:
            signed = (token, {**self.headers, "authorization": f"Bearer {token}"})
            self._signed = signed
        if request.headers is self.headers:
            headers = signed[1]
        else:
            headers = {**request.headers, "authorization": f"Bearer {token}"}
        return UpstreamRequest(request.method, request.url, headers, request.body)

    def build_request(self, request: ChatRequest) -> UpstreamRequest:
        url = self.stream_url if request.stream else self.url
        if self.claude is not None:
            body = self.claude.translate_body(request)
            del body["model"]  # the URL names the model on Vertex
            body = {"anthropic_version": _CLAUDE_VERSION, **body}
        else:
            body = build_generate_body(request, self.refuse)
        return UpstreamRequest("POST", url, self.headers, orjson.dumps(body))

    def parse_response(self, request: ChatRequest, reply: UpstreamReply) -> ChatResponse:
        if self.claude is not None:
            return self.claude.parse_response(request, reply)
        return parse_generate_response(reply_json(reply), self.model_id)

    def stream_translator(self, request: ChatRequest) -> StreamTranslator:
        if self.claude is not None:
            return self.claude.stream_translator(request)
        return GeminiStream(self.model_id, request.include_usage)

    def map_error(self, reply: UpstreamReply) -> GatewayError:
        if self.claude is None:
            return map_reply_error(reply)
        # Claude on Vertex answers in two dialects: Google's envelope for what the platform refuses
        # (auth, quota, unknown model) and Anthropic's for what the model itself refuses.
        body = error_json(reply.body)
        if is_google_error(body):
            return google_error(body, reply.status, reply.headers)
        return self.claude.map_error(reply)

    def build_embeddings_request(self, request: EmbeddingsRequest) -> UpstreamRequest:
        if self.claude is not None:
            raise self.unsupported(request.model, "embeddings")
        body: dict[str, Any] = {"instances": [{"content": text} for text in embedding_texts(request)]}
        if request.dimensions is not None:
            body["parameters"] = {"outputDimensionality": request.dimensions}
        return UpstreamRequest("POST", self.embed_url, self.headers, orjson.dumps(body))

    def parse_embeddings_response(
        self, request: EmbeddingsRequest, reply: UpstreamReply
    ) -> EmbeddingsResponse:
        """`{"predictions": [{"embeddings": {"values", "statistics": {"token_count"}}}]}` -> ours."""
        payload = reply_json(reply)
        predictions = payload.get("predictions") if isinstance(payload, dict) else None
        if not isinstance(predictions, list):
            raise UpstreamProtocolError("the provider's reply is not a Vertex AI predict response")
        values: list[Any] = []
        tokens = 0
        counted = True
        for prediction in predictions:
            embeddings = prediction.get("embeddings") if isinstance(prediction, dict) else None
            values.append(embeddings.get("values") if isinstance(embeddings, dict) else None)
            statistics = embeddings.get("statistics") if isinstance(embeddings, dict) else None
            count = statistics.get("token_count") if isinstance(statistics, dict) else None
            if isinstance(count, int | float) and not isinstance(count, bool):
                tokens += int(count)
            else:
                counted = False
        vectors = parse_vectors(values, len(request.inputs))
        if not counted:
            tokens = estimate_tokens(embedding_texts(request))
        return EmbeddingsResponse(vectors=vectors, usage=Usage(prompt_tokens=tokens))
