"""Bearer-token check for mutating endpoints (when a token is configured)."""

from __future__ import annotations

import hmac
from collections.abc import Callable

from fastapi import HTTPException, Request, status
from pydantic import SecretStr


def bearer_guard(token: SecretStr | None) -> Callable[[Request], None]:
    """A FastAPI dependency: no-op without a token, else 401 unless it is presented."""
    expected = token.get_secret_value().encode() if token else None

    def check(request: Request) -> None:
        if expected is None:
            return
        scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
        # compare_digest: no timing side channel on how much of the token matched.
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            presented.strip().encode(), expected
        ):
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "missing or wrong bearer token: send 'Authorization: Bearer <AGENT_API_TOKEN>'",
                headers={"WWW-Authenticate": "Bearer"},
            )

    return check
