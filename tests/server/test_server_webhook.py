"""The signed inbound webhook, and the signing scheme it shares with notifications."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from fastapi.testclient import TestClient

from calculator_agent.server.signing import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    SignatureError,
    sign,
    signed_headers,
    verify,
)

from tests.server.helpers import MakeApp, settle

SECRET = "whsec-test"
PATH = "/webhooks/inbound"


def post(
    client: TestClient,
    body: Any,
    *,
    secret: str = SECRET,
    at: float | None = None,
    headers: dict[str, str] | None = None,
) -> Any:
    raw = json.dumps(body).encode()
    signed = signed_headers(secret.encode(), raw, now=at) if headers is None else headers
    return client.post(PATH, content=raw, headers={"Content-Type": "application/json", **signed})


@pytest.fixture
def client(make_app: MakeApp) -> TestClient:
    return make_app(webhook_secret=SECRET)[0]


# --- the scheme -----------------------------------------------------------------------


def test_sign_matches_a_hand_computed_hmac() -> None:
    import hashlib
    import hmac

    expected = hmac.new(b"k", b"1700000000.{}", hashlib.sha256).hexdigest()
    assert sign(b"k", 1_700_000_000, b"{}") == f"sha256={expected}"


def test_verify_accepts_a_fresh_signature() -> None:
    headers = signed_headers(b"k", b"body", now=1000)
    verify(
        b"k",
        headers[TIMESTAMP_HEADER],
        headers[SIGNATURE_HEADER],
        b"body",
        tolerance_s=300,
        now=1100,
    )


@pytest.mark.parametrize(
    ("timestamp", "signature", "body", "now", "message"),
    [
        (None, "sha256=x", b"body", 1000, "unsigned request"),
        ("1000", None, b"body", 1000, "unsigned request"),
        ("soon", "sha256=x", b"body", 1000, "must be unix seconds"),
        ("1000", sign(b"k", 1000, b"body"), b"body", 1301, "301s away from now"),
        ("1000", sign(b"k", 1000, b"body"), b"body", 699, "301s away from now"),
        ("1000", sign(b"other", 1000, b"body"), b"body", 1000, "wrong signature"),
        ("1000", sign(b"k", 1000, b"body"), b"tampered", 1000, "wrong signature"),
        ("1001", sign(b"k", 1000, b"body"), b"body", 1000, "wrong signature"),
    ],
)
def test_verify_refuses(
    timestamp: str | None, signature: str | None, body: bytes, now: float, message: str
) -> None:
    with pytest.raises(SignatureError, match=message):
        verify(b"k", timestamp, signature, body, tolerance_s=300, now=now)


# --- the endpoint ---------------------------------------------------------------------


def test_webhook_launches_a_thread(client: TestClient) -> None:
    response = post(client, {"message": "divide 9 by 3"})
    assert response.status_code == 202, response.text
    thread_id = response.json()["thread_id"]
    assert response.headers["Location"] == f"/threads/{thread_id}"
    assert settle(client, thread_id)["waiting_for"]["args"] == {"a": 9, "b": 3}


def test_webhook_launches_from_an_event_under_its_own_id(client: TestClient) -> None:
    body = {
        "thread_id": "alert-17",
        "event": {"source": "monitoring", "type": "disk.full", "data": {"ask": "add 70 and 30"}},
    }
    response = post(client, body)
    assert response.status_code == 202
    assert response.json()["thread_id"] == "alert-17"
    view = settle(client, "alert-17")
    assert view["result"] == "The answer is 100."
    assert view["events"][0]["text"].startswith("monitoring event disk.full:")


def test_webhook_continues_a_thread_and_answers_it(client: TestClient) -> None:
    assert post(client, {"thread_id": "t-1", "message": "add 1 and 2"}).status_code == 202
    assert settle(client, "t-1")["status"] == "done"
    # The same thread id again continues the thread with a new request...
    assert post(client, {"thread_id": "t-1", "message": "divide 8 by 2"}).status_code == 202
    view = settle(client, "t-1")
    call_id = view["waiting_for"]["call_id"]
    # ...and an answer approves its pending call.
    answer = {"thread_id": "t-1", "answer": {"type": "approve", "call_id": call_id}}
    assert post(client, answer).status_code == 202
    view = settle(client, "t-1")
    assert view["result"] == "The answer is 4."
    assert [e["text"] for e in view["events"] if e["type"] == "user_input"] == [
        "add 1 and 2",
        "divide 8 by 2",
    ]


def test_unsigned_request_is_401(client: TestClient) -> None:
    response = post(client, {"message": "add 1 and 2"}, headers={})
    assert response.status_code == 401
    assert response.json()["detail"].startswith("unsigned request")
    assert client.get("/threads").json()["threads"] == []


def test_wrongly_signed_request_is_401(client: TestClient) -> None:
    response = post(client, {"message": "add 1 and 2"}, secret="guess")
    assert response.status_code == 401
    assert response.json()["detail"].startswith("wrong signature")


def test_tampered_body_is_401(client: TestClient) -> None:
    raw = json.dumps({"message": "add 1 and 2"}).encode()
    headers = signed_headers(SECRET.encode(), raw)
    response = client.post(PATH, content=raw.replace(b"1", b"9"), headers=headers)
    assert response.status_code == 401


def test_stale_timestamp_is_401(client: TestClient) -> None:
    response = post(client, {"message": "add 1 and 2"}, at=time.time() - 301)
    assert response.status_code == 401
    assert "re-sign the request" in response.json()["detail"]


def test_replayed_request_is_409_and_does_nothing(client: TestClient) -> None:
    raw = json.dumps({"message": "add 1 and 2"}).encode()
    headers = {"Content-Type": "application/json", **signed_headers(SECRET.encode(), raw)}
    first = client.post(PATH, content=raw, headers=headers)
    assert first.status_code == 202
    replay = client.post(PATH, content=raw, headers=headers)
    assert replay.status_code == 409
    assert replay.json()["detail"].startswith("replayed request")
    assert len(client.get("/threads").json()["threads"]) == 1


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "give exactly one of: message, event, answer"),
        ({"message": "a", "answer": {"type": "approve", "call_id": "c"}}, "give exactly one"),
        ({"answer": {"type": "approve", "call_id": "c"}}, "an answer needs the thread_id"),
        ({"message": "a", "priority": 1}, "body.priority: Extra inputs are not permitted"),
        ({"thread_id": "a b", "message": "x"}, "body.thread_id"),
    ],
)
def test_signed_but_malformed_body_is_422(client: TestClient, body: Any, message: str) -> None:
    response = post(client, body)
    assert response.status_code == 422
    assert message in response.json()["message"]


def test_signed_non_json_body_is_422(client: TestClient) -> None:
    raw = b"message=hello"
    response = client.post(PATH, content=raw, headers=signed_headers(SECRET.encode(), raw))
    assert response.status_code == 422
    assert "Invalid JSON" in response.json()["message"]


def test_webhook_answer_errors_match_the_api(client: TestClient) -> None:
    unknown = {"thread_id": "nope", "answer": {"type": "approve", "call_id": "c"}}
    assert post(client, unknown).status_code == 404
    assert post(client, {"thread_id": "w", "message": "divide 1 by 4"}).status_code == 202
    settle(client, "w")
    wrong = {"thread_id": "w", "answer": {"type": "approve", "call_id": "not-it"}}
    response = post(client, wrong)
    assert response.status_code == 409
    assert "waits for approval of" in response.json()["detail"]


def test_webhook_without_a_secret_is_503(make_app: MakeApp) -> None:
    client, _ = make_app()
    response = post(client, {"message": "add 1 and 2"})
    assert response.status_code == 503
    assert "AGENT_WEBHOOK_SECRET" in response.json()["detail"]


def test_webhook_needs_no_bearer_token(make_app: MakeApp) -> None:
    # The signature authenticates the sender; webhook senders rarely carry bearer tokens.
    client, _ = make_app(webhook_secret=SECRET, api_token="tok")
    assert post(client, {"message": "add 1 and 2"}).status_code == 202
