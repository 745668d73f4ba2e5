"""Outbound notifications: tell a configured URL that a thread waits for a human.

Signed like the inbound webhook (signing.py) so the receiver can check it came from this
server; retried with exponential backoff. The caller records a final failure in the
thread, where it never changes the thread's status: the pause stands either way.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from ..thread import Thread
from .schemas import links, waiting_for
from .signing import signed_headers

log = logging.getLogger(__name__)

DELIVERY_HEADER = "X-Agent-Delivery"
# A 4xx says the receiver will never take this body; only these are worth another try.
_RETRYABLE_4XX = {408, 425, 429}


@dataclass(frozen=True)
class Delivery:
    ok: bool
    attempts: int
    error: str | None = None


def notification(thread: Thread, public_url: str) -> dict[str, Any] | None:
    """The JSON body for a paused thread, or None when it does not wait for a human."""
    pending = waiting_for(thread)
    if pending is None:
        return None
    where = links(thread.id, public_url)
    return {
        "type": "thread.waiting_for_approval"
        if pending.kind == "approval"
        else "thread.waiting_for_human",
        "thread_id": thread.id,
        "call_id": pending.call_id,
        "question": pending.question,
        "call": {"intent": pending.intent, "args": pending.args}
        if pending.kind == "approval"
        else None,
        "answer": {"method": "POST", "url": where.answers, "bodies": pending.answer_with},
        "thread_url": where.thread,
        "sent_at": datetime.now(UTC).isoformat(),
    }


class Notifier:
    def __init__(
        self,
        url: str,
        secret: bytes,
        *,
        attempts: int = 4,
        backoff_s: float = 0.5,
        timeout_s: float = 5.0,
        client: httpx.Client | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.url = url
        self._secret = secret
        self.attempts = attempts
        self.backoff_s = backoff_s
        self._client = client or httpx.Client(timeout=timeout_s)
        self._sleep = sleep

    def deliver(self, payload: dict[str, Any]) -> Delivery:
        body = json.dumps(payload).encode()
        # One id for every attempt: a receiver that got a "failed" attempt can dedupe.
        delivery_id = uuid.uuid4().hex
        error = "not attempted"
        for attempt in range(1, self.attempts + 1):
            headers = {
                "Content-Type": "application/json",
                DELIVERY_HEADER: delivery_id,
                **signed_headers(self._secret, body),  # fresh timestamp per attempt
            }
            try:
                response = self._client.post(self.url, content=body, headers=headers)
            except httpx.HTTPError as exc:
                error = _compact(f"{type(exc).__name__}: {exc}")
            else:
                if response.is_success:
                    return Delivery(ok=True, attempts=attempt)
                error = _compact(f"HTTP {response.status_code}: {response.text}")
                if response.is_client_error and response.status_code not in _RETRYABLE_4XX:
                    return Delivery(ok=False, attempts=attempt, error=error)
            log.warning("notification %s attempt %d failed: %s", delivery_id, attempt, error)
            if attempt < self.attempts:
                self._sleep(self.backoff_s * 2 ** (attempt - 1))
        return Delivery(ok=False, attempts=self.attempts, error=error)

    def close(self) -> None:
        self._client.close()


def _compact(text: str, limit: int = 200) -> str:
    flat = re.sub(r"\s+", " ", text).strip()
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
