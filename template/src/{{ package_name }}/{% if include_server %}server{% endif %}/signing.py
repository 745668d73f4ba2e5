"""HMAC-SHA256 request signatures, for the inbound webhook and outbound notifications.

The signed message is `<timestamp>.<raw body>`: the timestamp bounds how long a captured
request stays usable, and the receiver remembers signatures it has seen within that
window, so a replay is refused even inside it.

    X-Agent-Timestamp: 1732170000
    X-Agent-Signature: sha256=<hex of HMAC-SHA256(secret, b"1732170000." + body)>
"""

from __future__ import annotations

import hashlib
import hmac
import time

TIMESTAMP_HEADER = "X-Agent-Timestamp"
SIGNATURE_HEADER = "X-Agent-Signature"
_PREFIX = "sha256="


class SignatureError(Exception):
    """Why a request's signature is refused (said to the sender, who can fix it)."""


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    digest = hmac.new(secret, str(timestamp).encode() + b"." + body, hashlib.sha256)
    return _PREFIX + digest.hexdigest()


def signed_headers(secret: bytes, body: bytes, now: float | None = None) -> dict[str, str]:
    timestamp = int(time.time() if now is None else now)
    return {TIMESTAMP_HEADER: str(timestamp), SIGNATURE_HEADER: sign(secret, timestamp, body)}


def verify(
    secret: bytes,
    timestamp: str | None,
    signature: str | None,
    body: bytes,
    *,
    tolerance_s: int,
    now: float | None = None,
) -> None:
    """Raise SignatureError unless the signature is right and the timestamp recent."""
    if not timestamp or not signature:
        raise SignatureError(f"unsigned request: send {TIMESTAMP_HEADER} and {SIGNATURE_HEADER}")
    try:
        sent = int(timestamp)
    except ValueError:
        raise SignatureError(f"{TIMESTAMP_HEADER} must be unix seconds") from None
    skew = abs((time.time() if now is None else now) - sent)
    if skew > tolerance_s:
        raise SignatureError(
            f"timestamp is {skew:.0f}s away from now (the window is {tolerance_s}s):"
            " re-sign the request with the current time"
        )
    # compare_digest: no timing side channel on how many characters matched.
    if not hmac.compare_digest(sign(secret, sent, body), signature.strip()):
        raise SignatureError(
            "wrong signature: expected sha256=HMAC-SHA256(secret, timestamp + '.' + raw body)"
        )
