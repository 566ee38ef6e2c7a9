"""A tiny stand-in for the Hugging Face hub on 127.0.0.1, serving repositories from local directories.

huggingface_hub reads ``HF_ENDPOINT``; to resolve a model crossrank calls two endpoints:

* ``GET /api/models/{repo}[/revision/{rev}]`` → JSON with ``sha`` and ``siblings`` (the file list);
* ``HEAD``/``GET /{repo}/resolve/{rev}/{path}`` → the file, with ``ETag`` and ``X-Repo-Commit``
  headers (huggingface_hub's cache layout is keyed by them).

Everything else answers 404. ``requests`` records the paths asked for, so tests can check what was
downloaded.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlparse

SHA = "0123456789abcdef0123456789abcdef01234567"


class FakeHub:
    """Serve ``repos`` ({"owner/name": directory}) until ``close()``."""

    def __init__(self, repos: dict[str, Path]) -> None:
        self.repos = repos
        self.requests: list[tuple[str, str]] = []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # quiet
                pass

            def _send(self, code: int, body: bytes, headers: dict[str, str], head: bool) -> None:
                self.send_response(code)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if not head:
                    self.wfile.write(body)

            def _handle(self, head: bool) -> None:
                path = unquote(urlparse(self.path).path)
                hub.requests.append((self.command, path))
                if path.startswith("/api/models/"):
                    rest = path[len("/api/models/") :]
                    repo = rest.split("/revision/")[0]
                    root = hub.repos.get(repo)
                    if root is None:
                        body = json.dumps({"error": "Repository not found"}).encode()
                        self._send(
                            404,
                            body,
                            {"X-Error-Code": "RepoNotFound", "Content-Type": "application/json"},
                            head,
                        )
                        return
                    files = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
                    body = json.dumps(
                        {
                            "id": repo,
                            "modelId": repo,
                            "sha": SHA,
                            "siblings": [{"rfilename": f} for f in files],
                        }
                    ).encode()
                    self._send(200, body, {"Content-Type": "application/json"}, head)
                    return
                if "/resolve/" in path:
                    repo, _, rest = path.lstrip("/").partition("/resolve/")
                    _rev, _, rel = rest.partition("/")
                    root = hub.repos.get(repo)
                    f = (root / rel) if root is not None else None
                    if f is None or not f.is_file():
                        self._send(404, b"", {"X-Error-Code": "EntryNotFound"}, head)
                        return
                    data = f.read_bytes()
                    etag = '"' + hashlib.sha1(data).hexdigest() + '"'
                    self._send(
                        200,
                        data,
                        {"ETag": etag, "X-Repo-Commit": SHA, "Content-Type": "application/octet-stream"},
                        head,
                    )
                    return
                self._send(404, b"", {}, head)

            def do_GET(self) -> None:
                self._handle(head=False)

            def do_HEAD(self) -> None:
                self._handle(head=True)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def downloaded(self) -> list[str]:
        """Return the repo paths fetched with GET …/resolve/…."""
        return [
            p.partition("/resolve/")[2].partition("/")[2]
            for m, p in self.requests
            if m == "GET" and "/resolve/" in p
        ]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@contextmanager
def serve(repos: dict[str, Path]) -> Iterator[FakeHub]:
    """Run a :class:`FakeHub` for the duration of the block."""
    hub = FakeHub(repos)
    try:
        yield hub
    finally:
        hub.close()
