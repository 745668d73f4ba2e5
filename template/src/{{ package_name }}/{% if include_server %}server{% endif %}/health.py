"""Whether the pieces the server needs answer: the store and the LLM endpoint."""

from __future__ import annotations

from .. import model_server
from ..settings import Settings
from ..store import ThreadStore
from .schemas import LLMHealth, StoreHealth


def probe_llm(settings: Settings) -> LLMHealth:
    if not settings.uses_local_client:
        # A hosted API is only known to answer by calling it (tokens, rate limits).
        return LLMHealth(
            client=settings.llm_client,
            answering=None,
            detail="only the Local client's endpoint is probed",
        )
    url = settings.local_llm_base_url
    answering = model_server.is_up(url, timeout=2.0)
    return LLMHealth(
        client=settings.llm_client,
        endpoint=url,
        answering=answering,
        detail=None if answering else f"nothing answers GET {url.rstrip('/')}/models",
    )


def probe_store(store: ThreadStore) -> StoreHealth:
    kind = type(store).__name__.removesuffix("Store").lower()
    try:
        store.list(limit=1)
    except Exception as exc:
        return StoreHealth(kind=kind, ok=False, detail=f"{type(exc).__name__}: {exc}"[:200])
    return StoreHealth(kind=kind, ok=True)
