"""The whole flow on a real server process with the real local model.

launch -> pause for a divide approval -> signed notification at a local receiver ->
approve over HTTP at the link it gave -> done with the right answer.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from calculator_agent.server.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify
from calculator_agent.settings import Settings

from tests.helpers import wait_until
from tests.server.helpers import ServerProcess, receiver

pytestmark = pytest.mark.model

TOKEN = "live-token"
NOTIFY_SECRET = "live-notify-secret"


def test_launch_pause_notify_approve_done(tmp_path: Path, model_settings: Settings) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with receiver() as hook:
        env = {
            "AGENT_AUTOSTART_MODEL": "false",
            "LOCAL_LLM_BASE_URL": model_settings.local_llm_base_url,
            "AGENT_API_TOKEN": TOKEN,
            "AGENT_NOTIFY_URL": hook.url,
            "AGENT_NOTIFY_SECRET": NOTIFY_SECRET,
        }
        server = ServerProcess(tmp_path, env).start()
        try:
            health = httpx.get(f"{server.url}/health", timeout=10).json()
            assert health["store"]["ok"] is True
            assert health["llm"]["endpoint"] == model_settings.local_llm_base_url

            started = time.perf_counter()
            launched = httpx.post(
                f"{server.url}/threads",
                json={"message": "what is 10 divided by 4?"},
                headers=auth,
                timeout=10,
            )
            accepted_in = time.perf_counter() - started
            assert launched.status_code == 202, launched.text
            thread_id = launched.json()["thread_id"]

            wait_until(lambda: hook.requests, 120, every=0.05)
            paused_in = time.perf_counter() - started
            (sent,) = hook.requests
            verify(
                NOTIFY_SECRET.encode(),
                sent.headers[TIMESTAMP_HEADER],
                sent.headers[SIGNATURE_HEADER],
                sent.body,
                tolerance_s=60,
            )
            note = sent.json()
            assert note["type"] == "thread.waiting_for_approval"
            assert note["thread_id"] == thread_id
            assert note["call"] == {"intent": "divide", "args": {"a": 10, "b": 4}}
            assert note["answer"]["url"] == f"{server.url}/threads/{thread_id}/answers"

            view = httpx.get(f"{server.url}/threads/{thread_id}").json()
            assert view["status"] == "waiting_for_approval"
            assert view["waiting_for"]["call_id"] == note["call_id"]

            # Without the token the answer is refused; with it, accepted.
            approve = {"type": "approve", "call_id": note["call_id"]}
            assert httpx.post(note["answer"]["url"], json=approve).status_code == 401
            answered = httpx.post(note["answer"]["url"], json=approve, headers=auth)
            assert answered.status_code == 202, answered.text

            def finished() -> dict[str, object] | None:
                current = httpx.get(f"{server.url}/threads/{thread_id}").json()
                return current if current["status"] != "running" else None

            final = wait_until(finished, 120, every=0.1)
            assert final["status"] == "done", final
            assert "2.5" in str(final["result"])
            types = [e["type"] for e in final["events"]]
            assert types[:2] == ["user_input", "tool_call"]
            assert types[2:5] == ["approval", "tool_started", "tool_response"]
            assert types.count("tool_started") == 1
            print(
                f"\nlaunch answered in {accepted_in * 1000:.0f} ms;"
                f" launch-to-pause (notification received) {paused_in:.2f} s"
            )
        finally:
            server.stop()
