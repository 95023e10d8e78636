"""A fake LLM provider (OpenAI + Anthropic shapes, JSON and SSE) for tests, bench and `make run`.

Endpoints: OpenAI `/v1/chat/completions`, `/v1/completions`, `/v1/responses`, `/v1/embeddings`;
Anthropic `/v1/messages` and `/v1/messages/count_tokens`; `GET /v1/models` lists `fake.models`.
A request with `"stream": true` gets SSE (OpenAI chat/completions send the
usage chunk only when `stream_options.include_usage` is true, like OpenAI).

Controls (per provider via methods, or per request via headers):
- usage: `set_usage(input=, output=, cached=, cache_creation=)`; per request the header
  `x-fake-usage: 120,30,10[,5[,2]]` (input, output, cached[, cache_creation[, of which 1h]]),
  where input counts
  every prompt token. Reported in each API's own convention: OpenAI prompt_tokens includes
  cached; Anthropic input_tokens excludes cache reads/writes.
- status: header `x-fake-status: 500` -> that status with a JSON error body, no usage.
- chunking: header `x-fake-chunk: 7` -> SSE written in 7-byte pieces, flushed one by one with a
  tiny sleep, so events are split across TCP writes (default: one write per event).
- slow stream: header `x-fake-slow: 0.2` -> sleep that long between SSE events (client disconnect
  tests); `x-fake-events: 50` -> number of content deltas (default 3).
- delay: header `x-fake-delay: 1.5` -> wait that long before answering (client gives up).
- model: the response reports the request's model unless header `x-fake-model` overrides it.
- service tier: OpenAI responses report `service_tier` (the request's, `default` when it asks
  for none or `auto`), Anthropic `usage.service_tier: standard`; header `x-fake-service-tier`
  overrides what is reported.

Every request is recorded (`requests`: path, lowercased headers, parsed body) so tests can assert
what reached the provider. Standalone: `python -m tests.fake_provider --port 18080`.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Usage:
    input: int = 100
    output: int = 20
    cached: int = 0
    cache_creation: int = 0
    cache_creation_1h: int = 0  # the part of cache_creation written with the 1h TTL


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    raw: bytes = b""


@dataclass
class _Plan:
    usage: Usage
    status: int = 200
    chunk: int = 0
    slow: float = 0.0
    events: int = 3
    model: str = "unknown"
    service_tier: str = "default"
    disconnected: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def _asked_tier(body: Any) -> str:
    tier = body.get("service_tier") if isinstance(body, dict) else None
    return tier if isinstance(tier, str) and tier not in ("", "auto") else "default"


def _sse(data: object, event: str | None = None) -> bytes:
    head = f"event: {event}\n" if event else ""
    payload = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    return f"{head}data: {payload}\n\n".encode()


# --------------------------------------------------------------------------- response bodies


def _openai_usage(u: Usage) -> dict[str, Any]:
    return {
        "prompt_tokens": u.input,
        "completion_tokens": u.output,
        "total_tokens": u.input + u.output,
        "prompt_tokens_details": {"cached_tokens": u.cached, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0},
    }


def _responses_usage(u: Usage) -> dict[str, Any]:
    return {
        "input_tokens": u.input,
        "input_tokens_details": {"cached_tokens": u.cached},
        "output_tokens": u.output,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": u.input + u.output,
    }


def _anthropic_usage(u: Usage, output: int | None = None) -> dict[str, Any]:
    return {
        "input_tokens": u.input - u.cached - u.cache_creation,
        "cache_creation_input_tokens": u.cache_creation,
        "cache_read_input_tokens": u.cached,
        "cache_creation": {
            "ephemeral_5m_input_tokens": u.cache_creation - u.cache_creation_1h,
            "ephemeral_1h_input_tokens": u.cache_creation_1h,
        },
        "output_tokens": u.output if output is None else output,
        "service_tier": "standard",
    }


def chat_json(p: _Plan) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": 1700000000,
        "model": p.model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": 'Hello "world" \u00e9 \\o/'},
                "finish_reason": "stop",
            }
        ],
        "usage": _openai_usage(p.usage),
        "service_tier": p.service_tier,
        "system_fingerprint": "fp_fake",
    }


def chat_sse(p: _Plan, include_usage: bool) -> Iterator[bytes]:
    base = {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "service_tier": p.service_tier,
    }
    extra: dict[str, Any] = {"usage": None} if include_usage else {}
    first = {"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}
    yield _sse({**base, "model": p.model, "choices": [first], **extra})
    for i in range(p.events):
        delta = {"index": 0, "delta": {"content": f"tok{i} "}, "finish_reason": None}
        yield _sse({**base, "model": p.model, "choices": [delta], **extra})
    stop = {"index": 0, "delta": {}, "finish_reason": "stop"}
    yield _sse({**base, "model": p.model, "choices": [stop], **extra})
    if include_usage:
        yield _sse({**base, "model": p.model, "choices": [], "usage": _openai_usage(p.usage)})
    yield _sse("[DONE]")


def completion_json(p: _Plan) -> dict[str, Any]:
    return {
        "id": "cmpl-fake",
        "object": "text_completion",
        "created": 1700000000,
        "model": p.model,
        "choices": [{"text": "hi", "index": 0, "logprobs": None, "finish_reason": "stop"}],
        "usage": _openai_usage(p.usage),
    }


def completion_sse(p: _Plan, include_usage: bool) -> Iterator[bytes]:
    base = {"id": "cmpl-fake", "object": "text_completion", "created": 1700000000}
    for i in range(p.events):
        choice = {"text": f"t{i}", "index": 0, "logprobs": None, "finish_reason": None}
        yield _sse({**base, "model": p.model, "choices": [choice]})
    if include_usage:
        yield _sse({**base, "model": p.model, "choices": [], "usage": _openai_usage(p.usage)})
    yield _sse("[DONE]")


def responses_object(p: _Plan, status: str = "completed") -> dict[str, Any]:
    done = status == "completed"
    return {
        "id": "resp_fake",
        "object": "response",
        "created_at": 1700000000,
        "status": status,
        "model": p.model,
        "output": [
            {
                "type": "message",
                "id": "msg_fake",
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": "Hi there", "annotations": []}],
            }
        ]
        if done
        else [],
        "usage": _responses_usage(p.usage) if done else None,
        "service_tier": p.service_tier,
    }


def responses_sse(p: _Plan) -> Iterator[bytes]:
    seq = 0

    def ev(kind: str, data: dict[str, Any]) -> bytes:
        nonlocal seq
        seq += 1
        return _sse({"type": kind, "sequence_number": seq, **data}, event=kind)

    yield ev("response.created", {"response": responses_object(p, "in_progress")})
    for i in range(p.events):
        yield ev(
            "response.output_text.delta",
            {"item_id": "msg_fake", "output_index": 0, "content_index": 0, "delta": f"w{i} "},
        )
    yield ev("response.completed", {"response": responses_object(p)})


def embeddings_json(p: _Plan, n_inputs: int) -> dict[str, Any]:
    return {
        "object": "list",
        "data": [
            {"object": "embedding", "index": i, "embedding": [0.001 * k for k in range(64)]}
            for i in range(n_inputs)
        ],
        "model": p.model,
        "usage": {"prompt_tokens": p.usage.input, "total_tokens": p.usage.input},
    }


def anthropic_json(p: _Plan) -> dict[str, Any]:
    return {
        "id": "msg_fake",
        "type": "message",
        "role": "assistant",
        "model": p.model,
        "content": [{"type": "text", "text": "Hello from the fake Claude"}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": _anthropic_usage(p.usage),
    }


def anthropic_sse(p: _Plan) -> Iterator[bytes]:
    msg = anthropic_json(p)
    msg["content"] = []
    msg["stop_reason"] = None
    msg["usage"] = _anthropic_usage(p.usage, output=1)
    yield _sse({"type": "message_start", "message": msg}, event="message_start")
    block = {
        "type": "content_block_start",
        "index": 0,
        "content_block": {"type": "text", "text": ""},
    }
    yield _sse(block, event="content_block_start")
    yield _sse({"type": "ping"}, event="ping")
    for i in range(p.events):
        delta = {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "text_delta", "text": f"c{i}"},
        }
        yield _sse(delta, event="content_block_delta")
    yield _sse({"type": "content_block_stop", "index": 0}, event="content_block_stop")
    # Cumulative usage: an early (partial) message_delta, then the final one; the last one wins.
    for out in (max(1, p.usage.output // 2), p.usage.output):
        md = {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn", "stop_sequence": None},
            "usage": {"output_tokens": out},
        }
        yield _sse(md, event="message_delta")
    yield _sse({"type": "message_stop"}, event="message_stop")


# --------------------------------------------------------------------------- server


class FakeProvider:
    """Threaded HTTP server; use as a context manager or start()/stop()."""

    def __init__(self, port: int = 0, host: str = "127.0.0.1") -> None:
        self.usage = Usage()
        # What GET /v1/models lists.
        self.models = ["gpt-4o-mini", "gpt-4o", "o1", "claude-sonnet-4-5", "claude-3-5-haiku"]
        self.models_raw: bytes | None = None  # a GET /v1/models body sent as is instead
        self.requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        provider = self

        class Handler(_Handler):
            fake = provider

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self.host = host
        self.port: int = self._server.server_address[1]
        self.url = f"http://{host}:{self.port}"
        self._thread: threading.Thread | None = None
        self.disconnects = 0

    def set_usage(
        self, input: int = 100, output: int = 20, cached: int = 0, cache_creation: int = 0
    ) -> None:
        self.usage = Usage(input, output, cached, cache_creation)

    def record(self, req: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(req)

    def last(self) -> RecordedRequest:
        with self._lock:
            return self.requests[-1]

    def clear(self) -> None:
        with self._lock:
            self.requests.clear()

    def start(self) -> FakeProvider:
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeProvider:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _Handler(BaseHTTPRequestHandler):
    fake: FakeProvider
    protocol_version = "HTTP/1.1"
    server_version = "fake-provider/1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    # -- helpers
    def _plan(self, body: Any) -> _Plan:
        u = self.fake.usage
        usage = Usage(u.input, u.output, u.cached, u.cache_creation)
        spec = self.headers.get("x-fake-usage")
        if spec:
            nums = [int(x) for x in spec.split(",")]
            nums += [0] * (5 - len(nums))
            usage = Usage(*nums[:5])
        model = self.headers.get("x-fake-model") or (
            body.get("model") if isinstance(body, dict) else None
        )
        return _Plan(
            usage=usage,
            status=int(self.headers.get("x-fake-status") or 200),
            chunk=int(self.headers.get("x-fake-chunk") or 0),
            slow=float(self.headers.get("x-fake-slow") or 0),
            events=int(self.headers.get("x-fake-events") or 3),
            model=str(model or "unknown"),
            service_tier=self.headers.get("x-fake-service-tier") or _asked_tier(body),
        )

    def _send_json(self, status: int, obj: object) -> None:
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _send_sse(self, events: Iterator[bytes], p: _Plan) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/event-stream; charset=utf-8")
        self.send_header("cache-control", "no-cache")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        try:
            for ev in events:
                pieces = (
                    [ev[i : i + p.chunk] for i in range(0, len(ev), p.chunk)] if p.chunk else [ev]
                )
                for piece in pieces:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                    self.wfile.flush()
                    if p.chunk:
                        time.sleep(0.001)
                if p.slow:
                    time.sleep(p.slow)
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            self.fake.disconnects += 1
            self.close_connection = True

    # -- verbs
    def do_GET(self) -> None:
        self.fake.record(
            RecordedRequest("GET", self.path, {k.lower(): v for k, v in self.headers.items()}, None)
        )
        if self.path.split("?", 1)[0].rstrip("/").endswith("/models") and self.fake.models_raw:
            raw = self.fake.models_raw
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)
        elif self.path.split("?", 1)[0].rstrip("/").endswith("/models"):
            data = [{"id": m, "object": "model", "owned_by": "fake"} for m in self.fake.models]
            self._send_json(200, {"object": "list", "data": data, "has_more": False})
        else:
            self._send_json(404, {"error": {"message": "not found", "type": "invalid_request"}})

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = None
        headers = {k.lower(): v for k, v in self.headers.items()}
        self.fake.record(RecordedRequest("POST", self.path, headers, body, raw))
        delay = float(self.headers.get("x-fake-delay") or 0)
        if delay:  # a slow provider: the client may give up before the answer
            time.sleep(delay)
        p = self._plan(body)
        path = self.path.split("?", 1)[0]
        is_anthropic = path.endswith("/messages")
        if path.endswith("/messages/count_tokens"):  # free: no usage, just a count
            self._send_json(200, {"input_tokens": max(1, len(raw) // 4)})
            return
        if p.status >= 400:
            if is_anthropic:
                err = {"type": "error", "error": {"type": "api_error", "message": "fake failure"}}
            else:
                err = {"error": {"message": "fake failure", "type": "server_error", "code": None}}
            self._send_json(p.status, err)
            return
        if not isinstance(body, dict):
            self._send_json(400, {"error": {"message": "body must be a JSON object"}})
            return
        stream = body.get("stream") is True
        opts = body.get("stream_options")
        include_usage = isinstance(opts, dict) and opts.get("include_usage") is True
        if path.endswith("/chat/completions"):
            if stream:
                self._send_sse(chat_sse(p, include_usage), p)
            else:
                self._send_json(200, chat_json(p))
        elif path.endswith("/completions"):
            if stream:
                self._send_sse(completion_sse(p, include_usage), p)
            else:
                self._send_json(200, completion_json(p))
        elif path.endswith("/responses"):
            if stream:
                self._send_sse(responses_sse(p), p)
            else:
                self._send_json(200, responses_object(p))
        elif path.endswith("/embeddings"):
            inp = body.get("input")
            n = len(inp) if isinstance(inp, list) else 1
            self._send_json(200, embeddings_json(p, n))
        elif is_anthropic:
            if stream:
                self._send_sse(anthropic_sse(p), p)
            else:
                self._send_json(200, anthropic_json(p))
        else:
            self._send_json(404, {"error": {"message": f"no route {path}"}})


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="fake OpenAI/Anthropic provider")
    ap.add_argument("--port", type=int, default=18080)
    ap.add_argument("--host", default="127.0.0.1")
    args = ap.parse_args(argv)
    fake = FakeProvider(args.port, args.host)
    print(f"fake provider on {fake.url}", flush=True)
    try:
        fake._server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        fake._server.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
