"""Test helpers for the server: a scripted calculator brain, waiting, a receiver, stores."""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from fastapi.testclient import TestClient

from calculator_agent.server.app import Services
from calculator_agent.settings import Settings

from tests.helpers import (
    wait_until,
)

# make_app(...) -> (an entered TestClient, the app's services); see conftest.py.
MakeApp = Callable[..., tuple[TestClient, Services]]


def settings_for(data_dir: Path, **overrides: Any) -> Settings:
    # No .env and no AGENT_* surprises from the environment of whoever runs the tests; the
    # Local client (scripted or the embedded model) whatever the project's default LLM.
    return Settings(_env_file=None, data_dir=data_dir, **{"llm_client": "Local", **overrides})


def settle(client: Any, thread_id: str, timeout: float = 10.0) -> dict[str, Any]:
    """GET the thread until no loop holds it and it is not running; returns the view."""

    def settled() -> dict[str, Any] | None:
        response = client.get(f"/threads/{thread_id}")
        assert response.status_code == 200, response.text
        view: dict[str, Any] = response.json()
        if not view["loop_active"] and view["status"] != "running":
            return view
        return None

    result: dict[str, Any] = wait_until(settled, timeout)
    return result


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# --- a local receiver for outbound notifications --------------------------------------


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    url: str
    requests: list[Received] = field(default_factory=list)
    # Status codes to answer, in order; 200 once they run out.
    script: list[int] = field(default_factory=list)


@contextlib.contextmanager
def receiver(script: list[int] | None = None) -> Iterator[Receiver]:
    """An HTTP server on 127.0.0.1 that records every POST."""
    port = free_port()
    state = Receiver(url=f"http://127.0.0.1:{port}/hook", script=list(script or []))
    lock = threading.Lock()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with lock:
                state.requests.append(Received(dict(self.headers.items()), body))
                code = state.script.pop(0) if state.script else 200
            self.send_response(code)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


# --- a real `calculator-agent serve` process ------------------------------------------


@dataclass
class ServerProcess:
    """`calculator-agent serve` in a child process on a free 127.0.0.1 port."""

    data_dir: Path
    env: dict[str, str]
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.data_dir / f"server-{self.port}.log"

    def start(self, timeout: float = 60) -> ServerProcess:
        cli = Path(sys.executable).with_name("calculator-agent")
        command = [str(cli), "serve", "--port", str(self.port), "--log-level", "info"]
        environment = {k: v for k, v in os.environ.items() if not k.startswith("AGENT_")}
        # The embedded store and the Local client unless a test says otherwise, whatever
        # defaults the project was generated with.
        defaults = {"AGENT_LLM_CLIENT": "Local", "AGENT_DATABASE_URL": ""}
        environment.update({**defaults, "AGENT_DATA_DIR": str(self.data_dir), **self.env})
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                command, env=environment, stdout=log, stderr=subprocess.STDOUT
            )

        def healthy() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"the server exited:\n{self.log.read_text()[-3000:]}")
            try:
                return httpx.get(f"{self.url}/health", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(healthy, timeout, every=0.2)
        return self

    def kill(self) -> None:
        """SIGKILL: no shutdown handler runs, as in a crash."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
