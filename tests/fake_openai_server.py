"""A local OpenAI-compatible chat-completions server for the LLM reranker tests.

It answers ``POST /v1/chat/completions`` with a RankGPT-style permutation computed by a deterministic
scorer (default: how many times the query's words occur in the passage; ties by passage label), and can
misbehave on purpose: malformed, partial, duplicated, out-of-range, prose-wrapped or bare-number answers,
slow answers, and 429/500 statuses. It records every request (passages of each window, concurrency) so
tests can check the window arithmetic. Standard library only; listens on 127.0.0.1 on a free port;
stops by itself after ``lifetime_s`` even if a test forgets to stop it.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_PASSAGE = re.compile(r"^\[(\d+)\] (.*)$", re.MULTILINE)
_QUERY = re.compile(r"^Search Query: (.*)\.$", re.MULTILINE)


def word_count_scorer(query: str, passage: str) -> float:
    """Relevance = number of passage words that are query words (case-insensitive)."""
    q = set(query.lower().split())
    return float(sum(w in q for w in passage.lower().split()))


@dataclass
class Behaviour:
    """What the server does; tests change it between calls (guarded by the server's lock).

    mode: "perfect" | "prose" | "bare" | "duplicates" | "missing" | "out_of_range" | "garbage" | "empty"
          | "think" | "reverse"
    fail_statuses: statuses returned (one per request, in order) before answering normally.
    delay_s: sleep before answering (interrupted when the server stops).
    usage: send a ``usage`` field.
    """

    mode: str = "perfect"
    fail_statuses: list[int] = field(default_factory=list)
    retry_after: str | None = None
    delay_s: float = 0.0
    usage: bool = True
    scorer: Callable[[str, str], float] = word_count_scorer


@dataclass
class Request:
    query: str
    passages: list[str]
    status: int
    t_start: float
    t_end: float = 0.0


class FakeOpenAIServer:
    """Start with ``with FakeOpenAIServer() as srv: ... srv.base_url``."""

    def __init__(self, behaviour: Behaviour | None = None, *, lifetime_s: float = 120.0) -> None:
        self.behaviour = behaviour or Behaviour()
        self.requests: list[Request] = []
        self.lock = threading.Lock()
        self.in_flight = 0
        self.max_in_flight = 0
        self._stop = threading.Event()
        self._lifetime_s = lifetime_s
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # keep pytest output clean
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length) or b"{}")
                if not self.path.endswith("/chat/completions"):
                    self._send(404, {"error": {"message": f"no route {self.path}"}})
                    return
                with server.lock:
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    status, payload, headers = server._answer(body)
                    self._send(status, payload, headers)
                finally:
                    with server.lock:
                        server.in_flight -= 1

            def _send(
                self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None
            ) -> None:
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for k, v in (headers or {}).items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout test)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._timer = threading.Timer(lifetime_s, self.stop)
        self._timer.daemon = True

    # -------------------------------------------------------------------------------------------------
    def start(self) -> FakeOpenAIServer:
        self._thread.start()
        self._timer.start()
        return self

    def stop(self) -> None:
        if self._stop.is_set():
            return
        self._stop.set()
        self._timer.cancel()
        if self._thread.is_alive():  # shutdown() waits for serve_forever, so only when it runs
            self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -------------------------------------------------------------------------------------------------
    def _answer(self, body: dict[str, Any]) -> tuple[int, dict[str, Any], dict[str, str]]:
        b = self.behaviour
        text = "\n".join(m.get("content") or "" for m in body.get("messages", []) if m.get("role") == "user")
        labelled = [(int(k), p) for k, p in _PASSAGE.findall(text)]
        passages = [p for _, p in labelled]
        qm = _QUERY.search(text)
        query = qm.group(1) if qm else ""
        with self.lock:
            status = b.fail_statuses.pop(0) if b.fail_statuses else 200
            rec = Request(query, passages, status, time.monotonic())
            self.requests.append(rec)
        if b.delay_s:
            self._stop.wait(b.delay_s)
        rec.t_end = time.monotonic()
        if status != 200:
            headers = {"Retry-After": b.retry_after} if b.retry_after is not None else {}
            return status, {"error": {"message": f"fake {status}", "type": "fake"}}, headers
        m = len(passages)
        best = sorted(range(m), key=lambda i: (-b.scorer(query, passages[i]), i))
        ids = [i + 1 for i in best]
        chain = " > ".join(f"[{k}]" for k in ids)
        if b.mode == "perfect":
            answer = chain
        elif b.mode == "reverse":
            answer = " > ".join(f"[{k}]" for k in reversed(ids))
        elif b.mode == "prose":
            answer = (
                f"Sure! Here is the ranking of the {m} passages:\n\n{chain}\n\nPassage [{ids[0]}] is best."
            )
        elif b.mode == "think":
            answer = f"<think>maybe [{m}] > [1]? no, 7 > 3</think>\n{chain}"
        elif b.mode == "bare":
            answer = f"Ranking of {m} passages: " + " > ".join(str(k) for k in ids)
        elif b.mode == "duplicates":
            answer = " > ".join(f"[{k}]" for k in ids[:2] + ids[:1] + ids[2:] + ids[:1])
        elif b.mode == "missing":
            answer = " > ".join(f"[{k}]" for k in ids[: max(1, m // 2)])
        elif b.mode == "out_of_range":
            answer = " > ".join(f"[{k}]" for k in [0, *ids[:1], m + 1, 999, *ids[1:]])
        elif b.mode == "garbage":
            answer = "I cannot rank these passages."
        elif b.mode == "empty":
            answer = ""
        else:
            raise ValueError(f"unknown mode {b.mode}")
        payload: dict[str, Any] = {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "fake"),
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": answer}, "finish_reason": "stop"}
            ],
        }
        if b.usage:
            prompt_words = sum(len((msg.get("content") or "").split()) for msg in body.get("messages", []))
            payload["usage"] = {
                "prompt_tokens": prompt_words,
                "completion_tokens": len(answer.split()),
                "total_tokens": prompt_words + len(answer.split()),
            }
        return 200, payload, {}
