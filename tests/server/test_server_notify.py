"""Outbound notifications: a signed POST when a thread pauses; retries; recorded failures."""

from __future__ import annotations

import httpx
import pytest

from calculator_agent.server.app import Services
from calculator_agent.server.notify import DELIVERY_HEADER, Notifier
from calculator_agent.server.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify
from calculator_agent.thread import Event, NotificationFailed, status

from tests.helpers import wait_until
from tests.server.helpers import MakeApp, receiver, settle

SECRET = "notify-secret"


def last_event(services: Services, thread_id: str) -> Event:
    return services.store.get(thread_id).thread.events[-1]


def test_a_pause_sends_a_signed_notification(make_app: MakeApp) -> None:
    with receiver() as hook:
        client, _ = make_app(
            notify_url=hook.url, notify_secret=SECRET, public_url="http://agent.example:8000"
        )
        thread_id = client.post("/threads", json={"message": "divide 10 by 4"}).json()["thread_id"]
        view = settle(client, thread_id)
        wait_until(lambda: hook.requests)
        (sent,) = hook.requests
        verify(
            SECRET.encode(),
            sent.headers[TIMESTAMP_HEADER],
            sent.headers[SIGNATURE_HEADER],
            sent.body,
            tolerance_s=60,
        )
        body = sent.json()
        call_id = view["waiting_for"]["call_id"]
        assert body["type"] == "thread.waiting_for_approval"
        assert body["thread_id"] == thread_id
        assert body["call_id"] == call_id
        assert body["question"] == "Approve divide(a=10, b=4)?"
        assert body["call"] == {"intent": "divide", "args": {"a": 10, "b": 4}}
        assert body["answer"]["url"] == f"http://agent.example:8000/threads/{thread_id}/answers"
        assert body["answer"]["bodies"][0] == {"type": "approve", "call_id": call_id}
        assert body["thread_url"] == f"http://agent.example:8000/threads/{thread_id}"


def test_a_question_is_notified_too_and_done_is_not(make_app: MakeApp) -> None:
    with receiver() as hook:
        client, _ = make_app(notify_url=hook.url, webhook_secret=SECRET)  # falls back
        asking = client.post("/threads", json={"message": "hello"}).json()["thread_id"]
        done = client.post("/threads", json={"message": "add 1 and 1"}).json()["thread_id"]
        settle(client, asking)
        settle(client, done)
        wait_until(lambda: hook.requests)
        (sent,) = hook.requests
        assert sent.json()["type"] == "thread.waiting_for_human"
        assert sent.json()["question"] == "What should I calculate?"
        assert sent.json()["call"] is None
        verify(
            SECRET.encode(),
            sent.headers[TIMESTAMP_HEADER],
            sent.headers[SIGNATURE_HEADER],
            sent.body,
            tolerance_s=60,
        )


def test_delivery_is_retried_with_backoff(make_app: MakeApp) -> None:
    with receiver(script=[503, 500]) as hook:
        client, services = make_app(notify_url=hook.url, notify_secret=SECRET)
        thread_id = client.post("/threads", json={"message": "divide 1 by 2"}).json()["thread_id"]
        settle(client, thread_id)
        wait_until(lambda: len(hook.requests) == 3 and services.scheduler.busy == 0)
        # One delivery id for all attempts, so the receiver can dedupe.
        assert len({r.headers[DELIVERY_HEADER] for r in hook.requests}) == 1
        events = client.get(f"/threads/{thread_id}").json()["events"]
        assert "notification_failed" not in [e["type"] for e in events]


def test_failed_delivery_is_recorded_and_the_pause_survives(make_app: MakeApp) -> None:
    with receiver(script=[500] * 10) as hook:
        client, services = make_app(
            notify_url=hook.url, notify_secret=SECRET, notify_attempts=3, notify_backoff_s=0.01
        )
        thread_id = client.post("/threads", json={"message": "divide 6 by 3"}).json()["thread_id"]
        view = settle(client, thread_id)
        call_id = view["waiting_for"]["call_id"]

        wait_until(lambda: isinstance(last_event(services, thread_id), NotificationFailed))
        assert len(hook.requests) == 3
        thread = services.store.get(thread_id).thread
        failed = thread.events[-1]
        assert isinstance(failed, NotificationFailed)
        assert failed.call_id == call_id
        assert failed.attempts == 3
        assert failed.url == hook.url
        assert failed.error.startswith("HTTP 500")
        # Still paused for exactly the same call; the API says so and takes the answer.
        assert status(thread).kind == "waiting_for_approval"
        view = client.get(f"/threads/{thread_id}").json()
        assert view["status"] == "waiting_for_approval"
        assert view["waiting_for"]["call_id"] == call_id
        answer = {"type": "approve", "call_id": call_id}
        assert client.post(f"/threads/{thread_id}/answers", json=answer).status_code == 202
        assert settle(client, thread_id)["result"] == "The answer is 2."


def test_unreachable_receiver_is_recorded(make_app: MakeApp) -> None:
    from tests.server.helpers import free_port

    url = f"http://127.0.0.1:{free_port()}/nobody"
    client, services = make_app(
        notify_url=url, notify_secret=SECRET, notify_attempts=2, notify_backoff_s=0.01
    )
    thread_id = client.post("/threads", json={"message": "hi"}).json()["thread_id"]
    settle(client, thread_id)
    wait_until(lambda: isinstance(last_event(services, thread_id), NotificationFailed))
    failed = last_event(services, thread_id)
    assert isinstance(failed, NotificationFailed)
    assert failed.error.startswith("ConnectError")
    assert client.get(f"/threads/{thread_id}").json()["status"] == "waiting_for_human"


def test_notifier_backs_off_exponentially_and_stops_on_a_permanent_4xx() -> None:
    calls: list[int] = []
    codes = iter([503, 429, 500, 200])

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(next(codes))

    slept: list[float] = []
    notifier = Notifier(
        "http://receiver.test/hook",
        b"k",
        attempts=4,
        backoff_s=0.5,
        client=httpx.Client(transport=httpx.MockTransport(handler)),
        sleep=slept.append,
    )
    assert notifier.deliver({"x": 1}).ok
    assert slept == [0.5, 1.0, 2.0]

    gone = Notifier(
        "http://receiver.test/hook",
        b"k",
        attempts=4,
        client=httpx.Client(transport=httpx.MockTransport(lambda _: httpx.Response(404))),
        sleep=slept.append,
    )
    outcome = gone.deliver({"x": 1})
    assert not outcome.ok
    assert outcome.attempts == 1
    assert outcome.error == "HTTP 404:"


def test_notify_url_without_a_secret_is_refused(make_app: MakeApp) -> None:
    with pytest.raises(ValueError, match="AGENT_NOTIFY_SECRET"):
        make_app(notify_url="http://127.0.0.1:9/hook")


def test_a_loop_that_finds_the_thread_paused_does_not_notify_again(make_app: MakeApp) -> None:
    # The race a sweep can lose: it saw the thread running, and by the time it held the
    # lease another loop had paused it (and notified).
    with receiver() as hook:
        client, services = make_app(notify_url=hook.url, notify_secret=SECRET)
        thread_id = client.post("/threads", json={"message": "divide 1 by 2"}).json()["thread_id"]
        settle(client, thread_id)
        wait_until(lambda: hook.requests and services.scheduler.busy == 0)
        services.scheduler.start(services.runner.claim(thread_id))
        wait_until(lambda: services.scheduler.busy == 0)
        assert len(hook.requests) == 1
