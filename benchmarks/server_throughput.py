"""How many launches + answers per second one server process sustains (scripted LLM).

Starts `create_app` under uvicorn in a child process, with a scripted LLM that answers
instantly (so the numbers are the server's: HTTP, the store, leases, background loops,
notifications), then drives N flows from C concurrent clients:

    launch "divide i by 2" -> pause (learned from the outbound notification)
    -> approve -> done (polled)

and prints flows/s (each flow is one launch and one answer), HTTP requests/s, and the
launch-to-pause latency. Run from the repository root:

    uv run python benchmarks/server_throughput.py                # SQLite in a temp dir
    uv run python benchmarks/server_throughput.py --database-url postgresql://postgres@127.0.0.1/test
"""

from __future__ import annotations

import argparse
import http.server
import json
import multiprocessing
import re
import socket
import statistics
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _serve(port: int, data_dir: str, database_url: str, notify_url: str, loops: int) -> None:
    """The server process: the real app, the real store, a scripted LLM."""
    import logging

    import uvicorn

    from calculator_agent.agent import Decision
    from calculator_agent.server import create_app
    from calculator_agent.settings import Settings
    from calculator_agent.thread import Thread, ToolResponse, UserInput

    operation = re.compile(r"divide (\d+) by (\d+)")

    def scripted(thread: Thread) -> Decision:
        last = thread.events[-1]
        if isinstance(last, ToolResponse):
            return Decision("done_for_now", {"message": f"The answer is {last.result}."})
        first = next(e for e in thread.events if isinstance(e, UserInput))
        found = operation.search(first.text)
        assert found is not None
        return Decision("divide", {"a": int(found[1]), "b": int(found[2])})

    settings = Settings(
        _env_file=None,
        data_dir=Path(data_dir),
        AGENT_DATABASE_URL=database_url,
        notify_url=notify_url,
        notify_secret="bench",
        public_url=f"http://127.0.0.1:{port}",
        max_concurrent_loops=loops,
    )
    logging.basicConfig(level=logging.WARNING)
    app = create_app(settings, next_step=scripted)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


class _Pauses:
    """Receives notifications; lets a client wait for its thread's pause."""

    def __init__(self) -> None:
        self._events: dict[str, threading.Event] = {}
        self._calls: dict[str, str] = {}
        self._lock = threading.Lock()

    def _slot(self, thread_id: str) -> threading.Event:
        with self._lock:
            return self._events.setdefault(thread_id, threading.Event())

    def arrived(self, body: dict[str, Any]) -> None:
        self._calls[body["thread_id"]] = body["call_id"]
        self._slot(body["thread_id"]).set()

    def wait(self, thread_id: str, timeout: float = 30) -> str:
        if not self._slot(thread_id).wait(timeout):
            raise TimeoutError(f"no pause notification for {thread_id}")
        return self._calls[thread_id]


def _receiver(pauses: _Pauses) -> tuple[http.server.ThreadingHTTPServer, str]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            pauses.arrived(json.loads(body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/hook"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flows", type=int, default=300)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--loops", type=int, default=8, help="AGENT_MAX_CONCURRENT_LOOPS")
    parser.add_argument("--database-url", default="", help="empty: SQLite in a temp dir")
    args = parser.parse_args()

    pauses = _Pauses()
    hook, hook_url = _receiver(pauses)
    port = _free_port()
    data_dir = tempfile.mkdtemp(prefix="agent-bench-")
    server = multiprocessing.get_context("spawn").Process(
        target=_serve, args=(port, data_dir, args.database_url, hook_url, args.loops)
    )
    server.start()
    base = f"http://127.0.0.1:{port}"
    requests = 0
    counter = threading.Lock()
    latencies: list[float] = []
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("the server did not start")
            time.sleep(0.2)

        limits = httpx.Limits(max_connections=args.clients, max_keepalive_connections=args.clients)
        with httpx.Client(base_url=base, timeout=30, limits=limits) as client:

            def flow(index: int) -> None:
                nonlocal requests
                sent = 0
                started = time.perf_counter()
                launched = client.post("/threads", json={"message": f"divide {index * 2} by 2"})
                assert launched.status_code == 202, launched.text
                thread_id = launched.json()["thread_id"]
                call_id = pauses.wait(thread_id)
                paused = time.perf_counter() - started
                answered = client.post(
                    f"/threads/{thread_id}/answers", json={"type": "approve", "call_id": call_id}
                )
                assert answered.status_code == 202, answered.text
                sent += 2
                while True:
                    sent += 1
                    view = client.get(f"/threads/{thread_id}").json()
                    if view["status"] == "done" and not view["loop_active"]:
                        assert view["result"] == f"The answer is {index}.0.", view["result"]
                        break
                    time.sleep(0.005)
                with counter:
                    requests += sent
                    latencies.append(paused)

            flow(0)  # warm-up: connections, first-use imports in the server
            latencies.clear()
            requests = 0
            began = time.perf_counter()
            with ThreadPoolExecutor(args.clients) as pool:
                list(pool.map(flow, range(1, args.flows + 1)))
            elapsed = time.perf_counter() - began
    finally:
        server.terminate()
        server.join(30)
        hook.shutdown()

    store = "SQLite" if not args.database_url else "PostgreSQL"
    latencies.sort()
    print(f"store: {store}; {args.flows} flows from {args.clients} clients; {args.loops} loops")
    print(f"flows/s (1 launch + 1 answer each): {args.flows / elapsed:.1f}")
    print(f"launches+answers/s:                 {2 * args.flows / elapsed:.1f}")
    print(f"HTTP requests/s (incl. polling):    {requests / elapsed:.1f}")
    print(
        "launch-to-pause latency (notified): "
        f"p50 {statistics.median(latencies) * 1000:.1f} ms, "
        f"p95 {latencies[int(0.95 * (len(latencies) - 1))] * 1000:.1f} ms"
    )


if __name__ == "__main__":
    main()
