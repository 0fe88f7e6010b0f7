"""`/v1/responses`: the OpenAI Responses API over any configured model (SPEC §4, reference §1.9).

`POST /v1/responses` translates the call to Chat Completions (responses_translate.py), prepends
the stored conversation of `previous_response_id`, and runs the shared chat pipeline with
`ResponsesEgress`, which presents the result as a Response object or as the Responses event
stream (`event:` + `data:` lines with a `sequence_number`, no `[DONE]`). With `store` (the
default) the finished turn is kept in the per-process store (responses_store.py) for
`GET`/`DELETE /v1/responses/{id}` and for the next `previous_response_id`.

A failure after the stream's first byte ends it with one `event: error` whose data has both the
Responses error-event fields (`type`, `code`, `message`, `param`, `sequence_number`) and SPEC §6's
`error` object, so the official SDK raises `APIError` rather than ending the loop silently.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import parse_qs

import orjson

from ...errors import (
    GatewayError,
    InvalidRequestError,
    MethodNotAllowedError,
    NotFoundError,
    UpstreamProtocolError,
    render_openai,
)
from ...pipeline.chat import run_chat
from ...pipeline.context import RequestContext
from ...pipeline.egress import StreamEncoder
from ...pipeline.validate import chat_request, parse_json_object
from ...server.http import JSON_CT, Receive, Scope, Send, send_bytes
from ...server.runtime import Runtime
from ...types import ChatRequest, ChatResponse, Usage
from .responses_store import ResponseStore, Turn
from .responses_translate import (
    ResponsesPlan,
    build_response,
    completion_output,
    new_id,
    output_message,
    parse_request,
    status_of,
)

_DONE = b"[DONE]"
# Providers whose reasoning models refuse `max_tokens` and want `max_completion_tokens`.
_COMPLETION_TOKENS_PROVIDERS = frozenset({"openai", "azure"})


def _owner(ctx: RequestContext) -> str | None:
    return ctx.principal.key_id if ctx.principal is not None else None


async def create_response(rt: Runtime, ctx: RequestContext, raw: bytes, receive: Receive, send: Send) -> None:
    """`POST /v1/responses`."""
    plan = parse_request(parse_json_object(raw))
    store: ResponseStore = rt.responses
    owner = _owner(ctx)
    parent: Turn | None = None
    if plan.previous_response_id is not None:
        stored = store.get(plan.previous_response_id, owner)
        if stored is None:
            # OpenAI's status and code, so callers can tell an expired chain from a bad request.
            raise NotFoundError(
                f"previous response with id '{plan.previous_response_id}' not found "
                f"(responses are kept {store.retention_s:g} s, in the gateway process that served them)",
                param="previous_response_id",
                code="previous_response_not_found",
            )
        parent = stored.turn
    history = parent.conversation() if parent is not None else None
    request = chat_request(plan.chat_body(history, _token_field(rt, plan.model)))
    # The encoder needs usage for `response.completed`, whatever the caller asked.
    request.include_usage = request.stream
    egress = ResponsesEgress(plan, store if plan.store else None, parent, owner)
    await run_chat(rt, ctx, request, receive, send, egress)


def _token_field(rt: Runtime, model: str) -> str:
    """The chat field for `max_output_tokens` that every deployment of `model`'s group accepts."""
    group = rt.groups.get(model)
    if group is not None:
        providers = {deployment.entry.provider for deployment in group.deployments}
        if providers <= _COMPLETION_TOKENS_PROVIDERS:
            return "max_completion_tokens"
    return "max_tokens"


async def response_by_id(rt: Runtime, ctx: RequestContext, scope: Scope, send: Send) -> None:
    """`GET` / `DELETE /v1/responses/{id}` on the stored responses of the caller's key."""
    path: str = scope["path"]
    method: str = scope["method"]
    response_id = path.partition("/responses/")[2]
    if not response_id or "/" in response_id:
        raise NotFoundError(f"no route for {method} {path}")
    store: ResponseStore = rt.responses
    owner = _owner(ctx)
    headers = [JSON_CT, (b"x-request-id", ctx.request_id)]
    if method == "GET":
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        if query.get("stream", ["false"])[-1].lower() == "true":
            raise InvalidRequestError(
                "streaming a stored response is not supported by the gateway; omit 'stream'",
                param="stream",
                code="unsupported_parameter",
            )
        stored = store.get(response_id, owner)
        if stored is None:
            raise _not_found(response_id)
        await send_bytes(send, 200, stored.body, headers)
    elif method == "DELETE":
        if not store.delete(response_id, owner):
            raise _not_found(response_id)
        body = orjson.dumps({"id": response_id, "object": "response.deleted", "deleted": True})
        await send_bytes(send, 200, body, headers)
    else:
        raise MethodNotAllowedError(f"{method} is not allowed on {path}; use GET or DELETE")


def _not_found(response_id: str) -> NotFoundError:
    return NotFoundError(f"response with id '{response_id}' not found", param="response_id")


class ResponsesEgress:
    """Presents one chat result as a Response object (or event stream) and stores the turn."""

    __slots__ = ("created_at", "owner", "parent", "plan", "response_id", "store")

    def __init__(
        self, plan: ResponsesPlan, store: ResponseStore | None, parent: Turn | None, owner: str | None
    ) -> None:
        self.plan = plan
        self.store = store
        self.parent = parent
        self.owner = owner
        self.response_id = new_id("resp_")
        self.created_at = int(time.time())

    def render_error(self, error: GatewayError) -> bytes:
        return render_openai(error)

    def complete(self, request: ChatRequest, response: ChatResponse) -> bytes:
        try:
            completion = orjson.loads(response.content)
        except orjson.JSONDecodeError as exc:
            raise UpstreamProtocolError("the provider's reply is not a chat completion") from exc
        output, finish = completion_output(completion)
        status, reason = status_of(finish)
        if status == "incomplete":
            for item in output:
                item["status"] = "incomplete"
        body = self.finish(status, output, response.usage, reason)
        return body

    def stream(self, request: ChatRequest) -> StreamEncoder:
        return ResponsesStream(self)

    def snapshot(self, status: str) -> dict[str, Any]:
        """The Response object while the stream runs (`response.created` / `.in_progress`)."""
        return build_response(self.plan, self.response_id, self.created_at, status, [], None)

    def finish(
        self, status: str, output: list[dict[str, Any]], usage: Usage | None, reason: str | None
    ) -> bytes:
        """The final Response object as JSON; kept in the store when the caller asked for `store`."""
        completed_at = int(time.time()) if status == "completed" else None
        response = build_response(
            self.plan, self.response_id, self.created_at, status, output, usage, reason, completed_at
        )
        body = orjson.dumps(response)
        if self.store is not None:
            turn = Turn((*self.plan.input_messages, output_message(output)), self.parent)
            self.store.put(self.response_id, body, turn, self.owner)
        return body


class _Call:
    """A function_call output item being streamed."""

    __slots__ = ("item", "open", "output_index", "pieces")

    def __init__(self, item: dict[str, Any], output_index: int) -> None:
        self.item = item
        self.output_index = output_index
        self.pieces: list[str] = []
        self.open = True


class ResponsesStream:
    """Per-stream state: OpenAI `chat.completion.chunk` frames in, Responses SSE events out.

    Items are opened as content arrives and closed in output order: the message when a tool call
    starts, a tool call when the next one starts (OpenAI streams calls one after another), and
    whatever is still open at `[DONE]`, followed by `response.completed` (or `.incomplete`).
    """

    __slots__ = (
        "_calls",
        "_closed",
        "_egress",
        "_finish",
        "_message",
        "_message_index",
        "_open_calls",
        "_output",
        "_part",
        "_pieces",
        "_seq",
        "_started",
        "_usage",
    )

    def __init__(self, egress: ResponsesEgress) -> None:
        self._egress = egress
        self._seq = 0
        self._started = False
        self._closed = False
        self._output: list[dict[str, Any]] = []
        self._message: dict[str, Any] | None = None
        self._message_index = 0
        self._part: dict[str, Any] | None = None
        self._pieces: list[str] = []
        self._calls: dict[int, _Call] = {}
        self._open_calls: list[_Call] = []
        self._finish: str | None = None
        self._usage: Usage | None = None

    # -------------------------------------------------------------------------- encoder API

    def encode(self, frames: list[bytes]) -> bytes:
        out: list[bytes] = []
        if not self._started:
            self._started = True
            self._emit_response(out, "response.created", orjson.dumps(self._egress.snapshot("in_progress")))
            self._emit_response(
                out, "response.in_progress", orjson.dumps(self._egress.snapshot("in_progress"))
            )
        for frame in frames:
            if self._closed:
                break
            payload = frame[6:] if frame[:6] == b"data: " else frame
            if payload[:6] == _DONE:
                self._close(out)
                continue
            try:
                chunk = orjson.loads(payload)
            except orjson.JSONDecodeError as exc:
                raise UpstreamProtocolError("a stream frame from the provider is not JSON") from exc
            if isinstance(chunk, dict):
                self._chunk(out, chunk)
        return b"".join(out)

    def error(self, error: GatewayError) -> bytes:
        payload = {
            "type": "error",
            "sequence_number": self._next(),
            "code": error.code,
            "message": error.message,
            "param": error.param,
            # SPEC §6: a top-level `error` object, which the official SDK raises as APIError.
            "error": error.to_openai()["error"],
        }
        return b"event: error\ndata: " + orjson.dumps(payload) + b"\n\n"

    # ------------------------------------------------------------------------------ events

    def _next(self) -> int:
        seq = self._seq
        self._seq += 1
        return seq

    def _emit(self, out: list[bytes], event: dict[str, Any]) -> None:
        event["sequence_number"] = self._next()
        out.append(b"event: " + event["type"].encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n")

    def _emit_response(self, out: list[bytes], kind: str, response: bytes) -> None:
        # The Response object is already JSON: splice it in rather than encoding it twice.
        head = orjson.dumps({"type": kind, "sequence_number": self._next()})
        out.append(
            b"event: " + kind.encode() + b"\ndata: " + head[:-1] + b',"response":' + response + b"}\n\n"
        )

    def _chunk(self, out: list[bytes], chunk: dict[str, Any]) -> None:
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            self._usage = Usage.from_openai(usage)
        choices = chunk.get("choices")
        if not isinstance(choices, list):
            return
        for choice in choices:
            # The Responses API has one output per call: only choice 0 exists here.
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta")
            if isinstance(delta, dict):
                content = delta.get("content")
                if isinstance(content, str) and content:
                    self._text(out, "output_text", content)
                refusal = delta.get("refusal")
                if isinstance(refusal, str) and refusal:
                    self._text(out, "refusal", refusal)
                calls = delta.get("tool_calls")
                if isinstance(calls, list):
                    for call in calls:
                        if isinstance(call, dict):
                            self._call(out, call)
            finish = choice.get("finish_reason")
            if isinstance(finish, str) and finish:
                self._finish = finish

    # ------------------------------------------------------------------------ message item

    def _open_message(self, out: list[bytes]) -> dict[str, Any]:
        self._close_calls(out, "completed")
        message: dict[str, Any] = {
            "id": new_id("msg_"),
            "type": "message",
            "status": "in_progress",
            "role": "assistant",
            "content": [],
        }
        self._message = message
        self._message_index = len(self._output)
        self._output.append(message)
        self._emit(
            out, {"type": "response.output_item.added", "output_index": self._message_index, "item": message}
        )
        return message

    def _open_part(self, out: list[bytes], message: dict[str, Any], kind: str) -> None:
        part: dict[str, Any] = (
            {"type": "output_text", "text": "", "annotations": []}
            if kind == "output_text"
            else {"type": "refusal", "refusal": ""}
        )
        self._part = part
        self._pieces = []
        self._emit(
            out,
            {
                "type": "response.content_part.added",
                "item_id": message["id"],
                "output_index": self._message_index,
                "content_index": len(message["content"]),
                "part": part,
            },
        )

    def _text(self, out: list[bytes], kind: str, text: str) -> None:
        message = self._message if self._message is not None else self._open_message(out)
        if self._part is not None and self._part["type"] != kind:
            self._close_part(out, message)
        if self._part is None:
            self._open_part(out, message, kind)
        self._pieces.append(text)
        event: dict[str, Any] = {
            "type": "response.output_text.delta" if kind == "output_text" else "response.refusal.delta",
            "item_id": message["id"],
            "output_index": self._message_index,
            "content_index": len(message["content"]),
            "delta": text,
        }
        if kind == "output_text":
            event["logprobs"] = []
        self._emit(out, event)

    def _close_part(self, out: list[bytes], message: dict[str, Any]) -> None:
        part = self._part
        if part is None:
            return
        text = "".join(self._pieces)
        where = {
            "item_id": message["id"],
            "output_index": self._message_index,
            "content_index": len(message["content"]),
        }
        if part["type"] == "output_text":
            done: dict[str, Any] = {"type": "output_text", "text": text, "annotations": []}
            self._emit(out, {"type": "response.output_text.done", **where, "text": text, "logprobs": []})
        else:
            done = {"type": "refusal", "refusal": text}
            self._emit(out, {"type": "response.refusal.done", **where, "refusal": text})
        self._emit(out, {"type": "response.content_part.done", **where, "part": done})
        message["content"].append(done)
        self._part = None
        self._pieces = []

    def _close_message(self, out: list[bytes], status: str) -> None:
        message = self._message
        if message is None:
            return
        self._close_part(out, message)
        message["status"] = status
        self._emit(
            out, {"type": "response.output_item.done", "output_index": self._message_index, "item": message}
        )
        self._message = None

    # ---------------------------------------------------------------------- function calls

    def _call(self, out: list[bytes], delta: dict[str, Any]) -> None:
        index = delta.get("index", 0)
        function = delta.get("function")
        if not isinstance(function, dict):
            function = {}
        fragment = function.get("arguments")
        fragment = fragment if isinstance(fragment, str) else ""
        call = self._calls.get(index) if isinstance(index, int) else None
        if call is None:
            self._close_message(out, "completed")
            self._close_calls(out, "completed")
            call_id, name = delta.get("id"), function.get("name")
            item: dict[str, Any] = {
                "id": new_id("fc_"),
                "type": "function_call",
                "status": "in_progress",
                "arguments": "",
                "call_id": call_id if isinstance(call_id, str) and call_id else new_id("call_"),
                "name": name if isinstance(name, str) else "",
            }
            call = _Call(item, len(self._output))
            if isinstance(index, int):
                self._calls[index] = call
            self._output.append(item)
            self._open_calls.append(call)
            self._emit(
                out, {"type": "response.output_item.added", "output_index": call.output_index, "item": item}
            )
        if not fragment:
            return
        call.pieces.append(fragment)
        if not call.open:
            # A fragment for a call already reported done (a provider interleaving calls): the
            # final Response object still gets the full arguments.
            call.item["arguments"] = "".join(call.pieces)
            return
        self._emit(
            out,
            {
                "type": "response.function_call_arguments.delta",
                "item_id": call.item["id"],
                "output_index": call.output_index,
                "delta": fragment,
            },
        )

    def _close_calls(self, out: list[bytes], status: str) -> None:
        for call in self._open_calls:
            item = call.item
            item["arguments"] = "".join(call.pieces)
            item["status"] = status
            call.open = False
            self._emit(
                out,
                {
                    "type": "response.function_call_arguments.done",
                    "item_id": item["id"],
                    "output_index": call.output_index,
                    "arguments": item["arguments"],
                    "name": item["name"],
                },
            )
            self._emit(
                out, {"type": "response.output_item.done", "output_index": call.output_index, "item": item}
            )
        self._open_calls.clear()

    # ------------------------------------------------------------------------------ ending

    def _close(self, out: list[bytes]) -> None:
        status, reason = status_of(self._finish)
        item_status = "incomplete" if status == "incomplete" else "completed"
        if not self._output:
            # An empty reply is still one (empty) message, as in the non-streamed Response.
            self._open_part(out, self._open_message(out), "output_text")
        self._close_message(out, item_status)
        self._close_calls(out, item_status)
        body = self._egress.finish(status, self._output, self._usage, reason)
        self._emit_response(
            out, "response.completed" if status == "completed" else "response.incomplete", body
        )
        self._closed = True
