"""Launch-to-pause latency with the real model: POST /threads -> paused for approval.

Serves the app under uvicorn (in this process, on a free 127.0.0.1 port) with the
configured LLM (the embedded model by default; it must be answering), then launches
"what is N divided by 4?" one at a time and prints, per launch, how long until the
pause notification arrived and how much of that was the LLM call itself.

    uv run python benchmarks/launch_to_pause.py --runs 5
"""

from __future__ import annotations

import argparse
import http.server
import json
import operator
import os
import socket
import statistics
import tempfile
import threading
import time
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import uvicorn

# As the CLI does: BAML would log every full prompt at its default level.
os.environ.setdefault("BAML_LOG", "error")

from calculator_agent import model_server
from calculator_agent.server import create_app
from calculator_agent.settings import Settings


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    arrived: dict[str, float] = {}
    ready = threading.Condition()

    class Hook(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with ready:
                arrived[body["thread_id"]] = time.perf_counter()
                ready.notify_all()
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    hook = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()

    settings = Settings(
        data_dir=Path(tempfile.mkdtemp(prefix="agent-latency-")),
        notify_url=f"http://127.0.0.1:{hook.server_address[1]}/hook",
        notify_secret="bench",
    )
    if settings.uses_local_client and not model_server.is_up(settings.local_llm_base_url, 10):
        raise SystemExit(f"nothing answers on {settings.local_llm_base_url}: start the model")
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    )
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)

    totals, llm = [], []
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
        for run in range(args.runs):
            started = time.perf_counter()
            response = client.post("/threads", json={"message": f"what is {run + 8} divided by 4?"})
            accepted_ms = (time.perf_counter() - started) * 1000
            thread_id = response.json()["thread_id"]
            with ready:
                if not ready.wait_for(partial(operator.contains, arrived, thread_id), 300):
                    raise SystemExit(f"thread {thread_id} never paused")
            total = arrived[thread_id] - started
            view = client.get(f"/threads/{thread_id}").json()
            calls = [e for e in view["events"] if e["type"] == "tool_call"]
            llm_s = sum(c["telemetry"]["latency_s"] for c in calls if c.get("telemetry"))
            totals.append(total)
            llm.append(llm_s)
            print(
                f"run {run + 1}: 202 in {accepted_ms:.0f} ms; paused ({view['status']},"
                f" {len(calls)} LLM step(s)) after {total:.2f} s, of which LLM {llm_s:.2f} s"
            )
    server.should_exit = True
    print(
        f"launch-to-pause: median {statistics.median(totals):.2f} s"
        f" (min {min(totals):.2f}, max {max(totals):.2f});"
        f" overhead beyond the LLM call: median"
        f" {statistics.median(t - m for t, m in zip(totals, llm, strict=True)) * 1000:.0f} ms"
    )


if __name__ == "__main__":
    main()
