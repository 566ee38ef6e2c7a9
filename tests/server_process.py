"""Start a real ``crossrank serve`` process on a free loopback port (for the server tests)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import httpx

import crossrank

REPO = Path(__file__).resolve().parents[1]
# Subprocesses import the crossrank this test run imported (the installed package, or a developer
# build under python/): putting python/ first would shadow an install with sources lacking _core.
CROSSRANK_ROOT = str(Path(crossrank.__file__).resolve().parents[1])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerProcess:
    """A ``python -m crossrank serve`` subprocess; ``url`` is its base URL once started."""

    def __init__(
        self, args: Sequence[str], *, env: dict[str, str] | None = None, startup_s: float = 180
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        full_env = dict(os.environ)
        paths = [CROSSRANK_ROOT, str(REPO / "tests")]
        if full_env.get("PYTHONPATH"):
            paths.append(full_env["PYTHONPATH"])
        full_env["PYTHONPATH"] = os.pathsep.join(paths)
        full_env.pop("CROSSRANK_API_KEYS", None)
        full_env.update(env or {})
        self.log_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"crossrank-serve-{self.port}.log"
        self._log = open(self.log_path, "w+b")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "crossrank", "serve", "--port", str(self.port), *args],
            env=full_env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + startup_s
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.logs()}")
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"server did not start within {startup_s} s:\n{self.logs()}")
            time.sleep(0.1)

    def logs(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_bytes().decode("utf-8", "replace")

    def terminate(self) -> None:
        """Send SIGTERM (graceful shutdown)."""
        self.proc.send_signal(signal.SIGTERM)

    def stop(self, timeout: float = 30) -> bool:
        """SIGTERM the server; return whether it exited cleanly.

        uvicorn re-raises the SIGTERM it caught once it has shut down gracefully, so a clean exit
        is status 0 or death by SIGTERM.
        """
        if self.proc.poll() is None:
            self.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode in (0, -signal.SIGTERM)


FAKE = ["--model", "py:server_fakes:make_model"]
FAKE_EMBED = ["--embed-model", "py:server_fakes:make_embed_model"]
