"""A scripted OpenAI-compatible model server on 127.0.0.1, so the real gateway can run an agent
turn offline.

Job: let an interop test drive the gateway's own agent tools (the ``exec`` tool in particular:
``bash-tools.exec-host-node``, the only caller of ``system.run`` with approvals) without a model
provider. The gateway is configured with a custom provider whose ``baseUrl`` points here
(``models.providers.<id>.api = "openai-completions"``); this server answers
``POST /v1/chat/completions`` like a model that always does what the user message says.

The script, read from the newest user message that carries one:

- ``EXEC<<command>>`` -> one tool call ``exec`` with ``{"command": command}``;
- once a tool result follows that message -> a final answer ``TOOL RESULT: <result text>``;
- no instruction -> an HTTP 400 error, so any other agent run on the session gateway (a voice
  transcript, say) still ends in an error, as it did when the gateway had no model at all.

Invariants: binds 127.0.0.1 only; stateless per request (the transcript the gateway sends is the
state), so parallel agent runs cannot cross; every request body is kept in ``requests`` for
assertions; both streaming (SSE) and plain JSON answers are produced, whichever was asked for.
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_EXEC = re.compile(r"EXEC<<(.*?)>>", re.DOTALL)


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return ""


def decide(messages: list[dict[str, Any]]) -> dict[str, Any]:
    """The scripted turn: ``{"tool": name, "arguments": {...}}`` or ``{"text": answer}``.

    The newest user message carrying ``EXEC<<...>>`` is the instruction (the gateway appends
    context messages of its own, also as ``user``, after a tool result); once a tool result
    follows it, the turn is over and the answer quotes that result."""
    for index in range(len(messages) - 1, -1, -1):
        message = messages[index]
        if message.get("role") != "user":
            continue
        matches = _EXEC.findall(_text_of(message.get("content")))
        if not matches:
            continue
        results = [m for m in messages[index + 1:] if m.get("role") == "tool"]
        if results:
            return {"text": f"TOOL RESULT: {_text_of(results[-1].get('content'))}"}
        return {"tool": "exec", "arguments": {"command": matches[-1]}}
    return {"error": "this scripted test model only follows EXEC<<command>> instructions"}


class MockModel:
    """``with MockModel() as model:`` serves on ``model.base_url`` until the block ends."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server naming
                if self.path.rstrip("/").endswith("/models"):
                    self._json({"object": "list", "data": [{"id": "scripted", "object": "model"}]})
                else:
                    self._json({"error": {"message": "not found"}}, status=404)

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                with owner._lock:
                    owner.requests.append(body)
                if not self.path.rstrip("/").endswith("/chat/completions"):
                    self._json({"error": {"message": f"unsupported path {self.path}"}}, status=404)
                    return
                turn = decide(list(body.get("messages") or []))
                if "error" in turn:
                    self._json({"error": {"message": turn["error"], "type": "invalid_request_error"}}, status=400)
                elif body.get("stream"):
                    self._stream(body, turn)
                else:
                    self._json(_completion(body, turn))

            def _json(self, payload: Any, status: int = 200) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _stream(self, body: dict[str, Any], turn: dict[str, Any]) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-cache")
                self.send_header("Connection", "close")
                self.end_headers()
                for chunk in _chunks(body, turn):
                    self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                self.wfile.write(b"data: [DONE]\n\n")
                self.wfile.flush()
                self.close_connection = True

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def provider_config(self, provider_id: str = "mock", model_id: str = "scripted") -> dict[str, Any]:
        """The ``models.providers`` and agent defaults to deep-merge into the gateway config."""
        return {
            "models": {
                "mode": "merge",
                "providers": {
                    provider_id: {
                        "baseUrl": self.base_url,
                        "apiKey": "not-a-real-key",
                        "api": "openai-completions",
                        "models": [
                            {
                                "id": model_id,
                                "name": "Scripted test model",
                                "reasoning": False,
                                "input": ["text"],
                                "cost": {"input": 0, "output": 0, "cacheRead": 0, "cacheWrite": 0},
                                "contextWindow": 128000,
                                "maxTokens": 4096,
                            }
                        ],
                    }
                },
            },
            "agents": {"defaults": {"model": {"primary": f"{provider_id}/{model_id}"}}},
        }

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> MockModel:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _base(body: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
        "created": int(time.time()),
        "model": str(body.get("model") or "scripted"),
    }


_USAGE = {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}


def _message(turn: dict[str, Any], *, streamed: bool) -> tuple[dict[str, Any], str]:
    """The assistant message (or stream delta) for a scripted turn, and its finish reason."""
    if "tool" not in turn:
        return {"role": "assistant", "content": turn["text"]}, "stop"
    call: dict[str, Any] = {
        "id": f"call_{uuid.uuid4().hex[:8]}",
        "type": "function",
        "function": {"name": turn["tool"], "arguments": json.dumps(turn["arguments"])},
    }
    if streamed:
        return {"role": "assistant", "tool_calls": [{"index": 0, **call}]}, "tool_calls"
    return {"role": "assistant", "content": None, "tool_calls": [call]}, "tool_calls"


def _completion(body: dict[str, Any], turn: dict[str, Any]) -> dict[str, Any]:
    message, finish = _message(turn, streamed=False)
    return {
        **_base(body),
        "object": "chat.completion",
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": _USAGE,
    }


def _chunks(body: dict[str, Any], turn: dict[str, Any]) -> list[dict[str, Any]]:
    base = {**_base(body), "object": "chat.completion.chunk"}
    delta, finish = _message(turn, streamed=True)
    return [
        {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]},
        {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]},
        {**base, "choices": [], "usage": _USAGE},
    ]
