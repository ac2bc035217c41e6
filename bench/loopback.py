"""A loopback HTTP server speaking the OpenAI (chat and text completions), Anthropic and Cohere APIs, for tests.

The answer to each request comes from a ``respond(prompt, body)`` function (``prompt``: the last user
message's text, or the raw ``prompt`` of a text completion). Faults are injected per prompt: ``faults[prompt]
= [429, 500, "timeout", ...]`` makes the first calls for that prompt fail in that order before it answers
normally. Injected 429 and 5xx answers carry ``Retry-After: 0`` and ``retry-after-ms`` (the SDKs ignore a zero
``Retry-After`` and fall back to their backoff of 0.5 s and more; a millisecond header keeps tests fast).
``max_in_flight`` records the most requests the server was handling at once, to check a client's concurrency
bound. A chat request asking for ``logprobs`` gets, as its first token's ``top_logprobs``, the
``(token, logprob)`` pairs ``top_logprobs(prompt, body)`` returns (its first pair is the token answered).
``continues_prefill`` chooses how a final assistant message is treated: continued, as vLLM does (an answer starting
with it is sent without it), or ignored, as servers answering afresh do (the answer is sent whole).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def _last_user_text(body: dict) -> str:
    for message in reversed(body.get("messages", [])):
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):
                return "".join(part.get("text", "") for part in content if isinstance(part, dict))
            return content or ""
    return ""


def _prompt_of(body: dict) -> str:
    """Text completions (``/v1/completions``) send a raw ``prompt``; chat APIs send messages."""
    return body["prompt"] if isinstance(body.get("prompt"), str) else _last_user_text(body)


def _openai_usage(usage_in: int, usage_out: int) -> dict:
    return {"prompt_tokens": usage_in, "completion_tokens": usage_out, "total_tokens": usage_in + usage_out}


def _chat_completion(body: dict, text: str, usage_in: int, usage_out: int, logprobs: dict | None) -> dict:
    choice = {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}
    return {
        "id": "cmpl-1",
        "object": "chat.completion",
        "created": 0,
        "model": body.get("model", ""),
        "choices": [{**choice, "logprobs": logprobs}],
        "usage": _openai_usage(usage_in, usage_out),
    }


def _text_completion(body: dict, text: str, usage_in: int, usage_out: int) -> dict:
    return {
        "id": "cmpl-2",
        "object": "text_completion",
        "created": 0,
        "model": body.get("model", ""),
        "choices": [{"index": 0, "finish_reason": "stop", "text": text, "logprobs": None}],
        "usage": _openai_usage(usage_in, usage_out),
    }


def _anthropic_message(body: dict, text: str, usage_in: int, usage_out: int) -> dict:
    return {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": body.get("model", ""),
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": usage_in, "output_tokens": usage_out},
    }


def _cohere_chat(body: dict, text: str, usage_in: int, usage_out: int) -> dict:
    return {
        "id": "co-1",
        "finish_reason": "COMPLETE",
        "message": {"role": "assistant", "content": [{"type": "text", "text": text}]},
        "usage": {"tokens": {"input_tokens": usage_in, "output_tokens": usage_out}},
    }


_PAYLOADS = (("/completions", _text_completion), ("/messages", _anthropic_message), ("/chat", _cohere_chat))
"""The answer of each path (by its ending) but ``/chat/completions``, which may carry log-probabilities."""


class _Server(ThreadingHTTPServer):
    # socketserver's default backlog of 5 drops connections when many clients connect at once; the client then
    # retries its SYN after a second, which would add a spurious second to some requests at high concurrency.
    request_queue_size = 128
    daemon_threads = True


class LoopbackLLMServer:
    def __init__(
        self,
        respond: Callable[[str, dict], str],
        latency: float = 0.0,
        faults: dict[str, list] | None = None,
        timeout_sleep: float = 3.0,
        retry_after_ms: int | None = 1,
        top_logprobs: Callable[[str, dict], list[tuple[str, float]]] | None = None,
        continues_prefill: bool = True,
    ):
        self.respond = respond
        self.continues_prefill = continues_prefill
        self.top_logprobs = top_logprobs
        self.latency = latency
        self.faults = {k: list(v) for k, v in (faults or {}).items()}
        self.timeout_sleep = timeout_sleep
        self.retry_after_ms = retry_after_ms
        self.in_flight = 0
        self.max_in_flight = 0
        self.calls: list[dict] = []
        self.auth_headers: list[str] = []
        self._lock = threading.Lock()
        self._server = _Server(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> LoopbackLLMServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _next_fault(self, prompt: str):
        with self._lock:
            queue = self.faults.get(prompt)
            return queue.pop(0) if queue else None

    @contextmanager
    def _handling(self, path: str, body: dict, auth_header: str):
        """Record the call and count it in flight while it is answered."""
        with self._lock:
            self.calls.append({"path": path, "body": body})
            self.auth_headers.append(auth_header)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            yield
        finally:
            with self._lock:
                self.in_flight -= 1

    def _reply(self, path: str, body: dict, prompt: str) -> tuple[int, dict, dict | None]:
        """(status, payload, headers) of one request: its next injected fault, else the answer after the latency."""
        fault = self._next_fault(prompt)
        if fault == "timeout" or isinstance(fault, int):
            return self._fault_reply(fault)
        if self.latency:
            time.sleep(self.latency)
        return self._answer_reply(path, body, prompt, self._answer_text(prompt, body))

    def _fault_reply(self, fault: str | int) -> tuple[int, dict, dict | None]:
        if fault == "timeout":
            time.sleep(self.timeout_sleep)
            return 504, {"error": {"message": "slow"}}, None
        retry_headers = {"Retry-After": "0"}
        if self.retry_after_ms is not None:
            retry_headers["retry-after-ms"] = str(self.retry_after_ms)
        message = "rate limited" if fault == 429 else f"injected {fault}"
        return fault, {"error": {"message": message}}, retry_headers

    def _answer_text(self, prompt: str, body: dict) -> str:
        """``respond``'s answer; where the last message is an assistant prefill it starts with, the continuation only
        (Anthropic-style prefill), unless the server answers afresh."""
        text = self.respond(prompt, body)
        messages = body.get("messages") or [{}]
        prefill = messages[-1].get("content") if messages[-1].get("role") == "assistant" else None
        if self.continues_prefill and isinstance(prefill, str) and text.startswith(prefill):
            return text[len(prefill) :]
        return text

    def _with_logprobs(self, prompt: str, body: dict, text: str) -> tuple[str, dict | None]:
        """(text, logprobs) of a chat answer: a request asking for ``logprobs`` is answered with the first of
        ``top_logprobs``' tokens, the pairs as its first token's ``top_logprobs``."""
        if not body.get("logprobs") or self.top_logprobs is None:
            return text, None
        top = self.top_logprobs(prompt, body)[: body.get("top_logprobs") or 1]
        entries = [{"token": t, "logprob": lp, "bytes": None} for t, lp in top]
        return top[0][0], {"content": [{**entries[0], "top_logprobs": entries}]}

    def _answer_reply(self, path: str, body: dict, prompt: str, text: str) -> tuple[int, dict, dict | None]:
        usage_in, usage_out = len(prompt.split()), len(text.split())
        if path.endswith("/chat/completions"):
            text, logprobs = self._with_logprobs(prompt, body, text)
            return 200, _chat_completion(body, text, usage_in, usage_out, logprobs), None
        for ending, payload in _PAYLOADS:
            if path.endswith(ending):
                return 200, payload(body, text, usage_in, usage_out), None
        return 404, {"error": {"message": f"unknown path {path}"}}, None

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in two writes: without TCP_NODELAY, Nagle's algorithm and the client's
            # delayed ACK add ~40 ms to every answer, which would swamp the latency being simulated.
            disable_nagle_algorithm = True

            def log_message(self, *args):  # keep test output clean
                pass

            def _send(self, status: int, payload: dict, headers: dict | None = None) -> None:
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for key, value in (headers or {}).items():
                        self.send_header(key, value)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def do_POST(self):  # noqa: N802 (http.server's naming)
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                auth_header = self.headers.get("Authorization") or self.headers.get("x-api-key") or ""
                with server._handling(self.path, body, auth_header):
                    self._send(*server._reply(self.path, body, _prompt_of(body)))

        return Handler
