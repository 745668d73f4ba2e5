"""Every endpoint and every error status, with a scripted LLM on SQLite."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from fastapi.testclient import TestClient

from calculator_agent.server.app import Services

from tests.helpers import CalculatorBrain
from tests.server.helpers import MakeApp, free_port, settings_for, settle


def launch(client: TestClient, **body: Any) -> str:
    response = client.post("/threads", json=body)
    assert response.status_code == 202, response.text
    thread_id: str = response.json()["thread_id"]
    return thread_id


def paused_for_divide(client: TestClient) -> tuple[str, str]:
    thread_id = launch(client, message="divide 10 by 4")
    view = settle(client, thread_id)
    assert view["status"] == "waiting_for_approval"
    call_id: str = view["waiting_for"]["call_id"]
    return thread_id, call_id


@pytest.fixture
def client(make_app: MakeApp) -> TestClient:
    return make_app()[0]


# --- launch ---------------------------------------------------------------------------


def test_launch_returns_202_at_once_with_links(make_app: MakeApp) -> None:
    gate = threading.Event()  # the LLM blocks: the request must return anyway
    client, _ = make_app(next_step=CalculatorBrain(gate=gate))
    response = client.post("/threads", json={"message": "divide 10 by 4"})
    assert response.status_code == 202
    body = response.json()
    thread_id = body["thread_id"]
    assert body["status"] == "running"
    assert body["links"]["thread"] == f"/threads/{thread_id}"
    assert body["links"]["answers"] == f"/threads/{thread_id}/answers"
    assert response.headers["Location"] == f"/threads/{thread_id}"
    view = client.get(f"/threads/{thread_id}").json()
    assert view["loop_active"] is True
    assert view["status"] == "running"
    gate.set()
    assert settle(client, thread_id)["status"] == "waiting_for_approval"


def test_read_says_exactly_what_a_paused_thread_waits_for(client: TestClient) -> None:
    thread_id, call_id = paused_for_divide(client)
    view = client.get(f"/threads/{thread_id}").json()
    assert view["id"] == thread_id
    assert view["loop_active"] is False
    assert view["waiting_for"] == {
        "kind": "approval",
        "call_id": call_id,
        "question": "Approve divide(a=10, b=4)?",
        "intent": "divide",
        "args": {"a": 10, "b": 4},
        "answer_with": [
            {"type": "approve", "call_id": call_id},
            {"type": "reject", "call_id": call_id, "feedback": "why not"},
        ],
    }
    assert [e["type"] for e in view["events"]] == ["user_input", "tool_call"]
    assert view["events"][1]["needs_approval"] is True
    assert view["result"] is None


def test_launch_from_an_external_event(client: TestClient) -> None:
    thread_id = launch(
        client,
        event={
            "source": "billing",
            "type": "invoice.split",
            "data": {"request": "divide 120 by 4"},
        },
    )
    view = settle(client, thread_id)
    first = view["events"][0]
    assert first["type"] == "user_input"
    assert first["text"].startswith("billing event invoice.split:")
    assert view["waiting_for"]["args"] == {"a": 120, "b": 4}


def test_launch_prefetches_constants(client: TestClient) -> None:
    thread_id = launch(client, message="multiply pi by 2")
    view = client.get(f"/threads/{thread_id}").json()
    assert view["events"][1]["type"] == "prefetched"


def test_launch_with_own_thread_id_twice_is_409(client: TestClient) -> None:
    assert launch(client, message="add 1 and 2", thread_id="ticket-4711") == "ticket-4711"
    again = client.post("/threads", json={"message": "add 1 and 2", "thread_id": "ticket-4711"})
    assert again.status_code == 409
    assert again.json()["detail"] == "thread ticket-4711 already exists"


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({}, "give exactly one of: message, event"),
        ({"message": "x", "event": {"source": "a", "type": "b"}}, "give exactly one of"),
        ({"message": ""}, "body.message"),
        ({"message": "x", "colour": "red"}, "body.colour: Extra inputs are not permitted"),
        ({"message": "x", "thread_id": "no spaces allowed"}, "body.thread_id"),
        ({"event": {"source": "a"}}, "body.event.type: Field required"),
    ],
)
def test_launch_malformed_body_is_422(client: TestClient, body: Any, where: str) -> None:
    response = client.post("/threads", json=body)
    assert response.status_code == 422
    assert where in response.json()["message"]


def test_launch_with_invalid_json_is_422(client: TestClient) -> None:
    response = client.post(
        "/threads", content=b'{"message": ', headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422
    assert "JSON" in response.json()["message"]


# --- read and list --------------------------------------------------------------------


def test_unknown_thread_is_404(client: TestClient) -> None:
    response = client.get("/threads/nope")
    assert response.status_code == 404
    assert response.json() == {"detail": "no thread 'nope'"}


def test_list_filters_by_status(client: TestClient) -> None:
    done = launch(client, message="add 2 and 3")
    waiting, _ = paused_for_divide(client)
    asking = launch(client, message="hello there")
    assert settle(client, done)["result"] == "The answer is 5."
    assert settle(client, asking)["status"] == "waiting_for_human"

    def ids(query: str) -> list[str]:
        response = client.get(f"/threads{query}")
        assert response.status_code == 200
        return [row["id"] for row in response.json()["threads"]]

    assert set(ids("")) == {done, waiting, asking}
    assert ids("?status=done") == [done]
    assert ids("?status=waiting_for_approval") == [waiting]
    assert ids("?status=waiting_for_human") == [asking]
    assert ids("?status=running") == []
    assert len(ids("?limit=2")) == 2
    row = client.get("/threads?status=done").json()["threads"][0]
    assert row["first_input"] == "add 2 and 3"
    assert row["links"]["thread"] == f"/threads/{done}"


@pytest.mark.parametrize("query", ["?status=bogus", "?limit=0", "?limit=many"])
def test_list_with_bad_query_is_422(client: TestClient, query: str) -> None:
    assert client.get(f"/threads{query}").status_code == 422


# --- answers --------------------------------------------------------------------------


def test_approve_runs_the_call_and_finishes(client: TestClient) -> None:
    thread_id, call_id = paused_for_divide(client)
    response = client.post(
        f"/threads/{thread_id}/answers", json={"type": "approve", "call_id": call_id}
    )
    assert response.status_code == 202
    assert response.json()["status"] == "running"
    view = settle(client, thread_id)
    assert view["status"] == "done"
    assert view["result"] == "The answer is 2.5."
    types = [e["type"] for e in view["events"]]
    assert types == [
        "user_input",
        "tool_call",
        "approval",
        "tool_started",
        "tool_response",
        "tool_call",
    ]


def test_reject_with_feedback_reaches_the_model(client: TestClient) -> None:
    thread_id, call_id = paused_for_divide(client)
    response = client.post(
        f"/threads/{thread_id}/answers",
        json={"type": "reject", "call_id": call_id, "feedback": "no dividing today"},
    )
    assert response.status_code == 202
    view = settle(client, thread_id)
    assert view["result"] == "Not dividing: no dividing today"
    assert "tool_started" not in [e["type"] for e in view["events"]]


def test_reply_to_a_question_continues(client: TestClient) -> None:
    thread_id = launch(client, message="hello")
    view = settle(client, thread_id)
    assert view["waiting_for"]["kind"] == "reply"
    assert view["waiting_for"]["question"] == "What should I calculate?"
    call_id = view["waiting_for"]["call_id"]
    response = client.post(
        f"/threads/{thread_id}/answers",
        json={"type": "reply", "call_id": call_id, "text": "multiply 6 by 7"},
    )
    assert response.status_code == 202
    assert settle(client, thread_id)["result"] == "The answer is 42."


def test_answer_unknown_thread_is_404(client: TestClient) -> None:
    response = client.post("/threads/nope/answers", json={"type": "approve", "call_id": "c"})
    assert response.status_code == 404
    assert response.json()["detail"] == "no thread 'nope'"


def test_answer_for_another_call_id_is_409(client: TestClient) -> None:
    thread_id, call_id = paused_for_divide(client)
    response = client.post(
        f"/threads/{thread_id}/answers", json={"type": "approve", "call_id": "not-it"}
    )
    assert response.status_code == 409
    assert response.json()["detail"] == (
        f"thread {thread_id} waits for approval of {call_id}, not not-it"
    )
    assert client.get(f"/threads/{thread_id}").json()["status"] == "waiting_for_approval"


def test_reply_when_an_approval_is_awaited_is_409(client: TestClient) -> None:
    thread_id, call_id = paused_for_divide(client)
    response = client.post(
        f"/threads/{thread_id}/answers", json={"type": "reply", "call_id": call_id, "text": "4"}
    )
    assert response.status_code == 409
    assert "not waiting for an answer" in response.json()["detail"]


def test_approval_when_a_reply_is_awaited_is_409(client: TestClient) -> None:
    thread_id = launch(client, message="hi")
    call_id = settle(client, thread_id)["waiting_for"]["call_id"]
    response = client.post(
        f"/threads/{thread_id}/answers", json={"type": "approve", "call_id": call_id}
    )
    assert response.status_code == 409
    assert "not waiting for approval" in response.json()["detail"]


def test_answer_to_a_done_thread_is_409(client: TestClient) -> None:
    thread_id, call_id = paused_for_divide(client)
    body = {"type": "approve", "call_id": call_id}
    assert client.post(f"/threads/{thread_id}/answers", json=body).status_code == 202
    settle(client, thread_id)
    again = client.post(f"/threads/{thread_id}/answers", json=body)
    assert again.status_code == 409
    assert again.json()["detail"] == f"thread {thread_id} is done, not waiting for approval"


def test_answer_while_the_loop_runs_is_409(make_app: MakeApp) -> None:
    gate = threading.Event()
    client, _ = make_app(next_step=CalculatorBrain(gate=gate))
    thread_id = launch(client, message="divide 10 by 4")
    body = {"type": "approve", "call_id": "c"}
    response = client.post(f"/threads/{thread_id}/answers", json=body)
    assert response.status_code == 409
    assert response.json()["detail"] == f"thread {thread_id} is running, not waiting for approval"
    gate.set()
    settle(client, thread_id)


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"type": "approve"}, "body.approve.call_id: Field required"),
        ({"type": "reject", "call_id": "c"}, "body.reject.feedback: Field required"),
        ({"type": "reject", "call_id": "c", "feedback": ""}, "body.reject.feedback"),
        ({"type": "reply", "call_id": "c"}, "body.reply.text: Field required"),
        ({"type": "maybe", "call_id": "c"}, "does not match any of the expected tags"),
        ({"call_id": "c"}, "Unable to extract tag using discriminator"),
        ([1, 2], "body"),
    ],
)
def test_malformed_answer_is_422(client: TestClient, body: Any, where: str) -> None:
    thread_id, _ = paused_for_divide(client)
    response = client.post(f"/threads/{thread_id}/answers", json=body)
    assert response.status_code == 422, response.text
    assert where in response.json()["message"]


# --- messages -------------------------------------------------------------------------


def test_message_continues_a_done_thread(client: TestClient) -> None:
    thread_id = launch(client, message="add 2 and 3")
    settle(client, thread_id)
    response = client.post(f"/threads/{thread_id}/messages", json={"message": "multiply 5 by 3"})
    assert response.status_code == 202
    view = settle(client, thread_id)
    assert view["result"] == "The answer is 15."
    assert [e["text"] for e in view["events"] if e["type"] == "user_input"] == [
        "add 2 and 3",
        "multiply 5 by 3",
    ]


def test_message_errors(make_app: MakeApp) -> None:
    gate = threading.Event()
    client, _ = make_app(next_step=CalculatorBrain(gate=gate))
    assert client.post("/threads/nope/messages", json={"message": "x"}).status_code == 404
    assert client.post("/threads/nope/messages", json={"text": "x"}).status_code == 422
    running = launch(client, message="divide 1 by 2")
    busy = client.post(f"/threads/{running}/messages", json={"message": "add 1 and 1"})
    assert busy.status_code == 409
    assert busy.json()["detail"] == (
        f"thread {running} is running: a loop holds it; try again once it pauses"
    )
    gate.set()
    settle(client, running)
    waiting = client.post(f"/threads/{running}/messages", json={"message": "add 1 and 1"})
    assert waiting.status_code == 409
    assert waiting.json()["detail"] == (
        f"thread {running} is waiting_for_approval; answer that first"
    )


# --- fork -----------------------------------------------------------------------------


def test_fork_at_a_pause_copies_without_running(client: TestClient) -> None:
    thread_id, call_id = paused_for_divide(client)
    response = client.post(f"/threads/{thread_id}/fork", json={"at": 1})
    assert response.status_code == 201
    body = response.json()
    assert body["forked_from"] == thread_id
    assert body["status"] == "waiting_for_approval"
    assert body["started"] is False
    fork = client.get(f"/threads/{body['thread_id']}").json()
    assert fork["waiting_for"]["call_id"] == call_id
    assert response.headers["Location"] == f"/threads/{body['thread_id']}"


def test_fork_with_work_due_starts_its_loop(client: TestClient) -> None:
    thread_id, call_id = paused_for_divide(client)
    client.post(f"/threads/{thread_id}/answers", json={"type": "approve", "call_id": call_id})
    settle(client, thread_id)
    # Event 0 is the request: the fork replays the whole thing from there.
    response = client.post(f"/threads/{thread_id}/fork", json={"at": 0})
    assert response.status_code == 201
    assert response.json()["started"] is True
    fork = settle(client, response.json()["thread_id"])
    assert fork["status"] == "waiting_for_approval"
    assert fork["waiting_for"]["call_id"] != call_id


def test_fork_errors(client: TestClient) -> None:
    thread_id, _ = paused_for_divide(client)
    assert client.post("/threads/nope/fork", json={"at": 0}).status_code == 404
    past = client.post(f"/threads/{thread_id}/fork", json={"at": 9})
    assert past.status_code == 422
    assert past.json()["detail"] == f"at=9 is out of range: thread {thread_id} has events 0..1"
    assert client.post(f"/threads/{thread_id}/fork", json={"at": -1}).status_code == 422
    assert client.post(f"/threads/{thread_id}/fork", json={}).status_code == 422


# --- health, docs, auth ---------------------------------------------------------------


def test_health_reports_store_and_llm(make_app: MakeApp) -> None:
    up, _ = make_app()
    body = up.get("/health").json()
    assert body["status"] == "ok"
    assert body["store"] == {"kind": "sqlite", "ok": True, "detail": None}
    assert body["llm"]["answering"] is True


def test_health_is_degraded_when_the_llm_does_not_answer(make_app: MakeApp) -> None:
    down, _ = make_app(llm_up=False)
    response = down.get("/health")
    assert response.status_code == 200
    assert response.json()["status"] == "degraded"


def test_health_probes_the_real_local_endpoint(tmp_path: Any) -> None:
    from calculator_agent.server.health import probe_llm

    nobody = settings_for(tmp_path, local_llm_base_url=f"http://127.0.0.1:{free_port()}/v1")
    probe = probe_llm(nobody)
    assert probe.answering is False
    assert probe.detail is not None
    assert "nothing answers" in probe.detail
    hosted = probe_llm(settings_for(tmp_path, llm_client="OpenAI"))
    assert hosted.answering is None


def test_openapi_docs_are_served(client: TestClient) -> None:
    assert client.get("/docs").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    assert {
        "/threads",
        "/threads/{thread_id}",
        "/threads/{thread_id}/answers",
        "/threads/{thread_id}/messages",
        "/threads/{thread_id}/fork",
        "/webhooks/inbound",
        "/health",
    } <= set(paths)
    webhook_body = paths["/webhooks/inbound"]["post"]["requestBody"]["content"]
    assert "answer" in webhook_body["application/json"]["schema"]["properties"]


@pytest.fixture
def guarded(make_app: MakeApp) -> tuple[TestClient, Services]:
    return make_app(api_token="s3cret")


def test_bearer_token_is_required_on_mutating_endpoints(
    guarded: tuple[TestClient, Services],
) -> None:
    client, _ = guarded
    mutating = [
        ("/threads", {"message": "add 1 and 2"}),
        ("/threads/x/answers", {"type": "approve", "call_id": "c"}),
        ("/threads/x/messages", {"message": "hi"}),
        ("/threads/x/fork", {"at": 0}),
    ]
    for path, body in mutating:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret"}):
            response = client.post(path, json=body, headers=headers)
            assert response.status_code == 401, (path, headers)
            assert response.headers["WWW-Authenticate"] == "Bearer"
            assert "bearer token" in response.json()["detail"]
    ok = client.post(
        "/threads", json={"message": "add 1 and 2"}, headers={"Authorization": "Bearer s3cret"}
    )
    assert ok.status_code == 202
    # Reads stay open.
    assert client.get(f"/threads/{ok.json()['thread_id']}").status_code == 200
    assert client.get("/threads").status_code == 200
    assert client.get("/health").status_code == 200
