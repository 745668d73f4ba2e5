"""Shared fixtures. Tests marked `model` use the real embedded model server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from calculator_agent import model_server
from calculator_agent.settings import Settings


@pytest.fixture(scope="session")
def model_settings() -> Iterator[Settings]:
    """Settings whose Local client answers: reuses a running server or starts one.

    The model file lives in the project's .data dir (as for `calculator-agent run`), so it
    is joined and verified once per machine, not once per test run.
    """
    settings = Settings(data_dir=Path(".data"))
    started = None
    if not model_server.is_up(settings.local_llm_base_url):
        try:
            started = model_server.start_server(settings)
        except model_server.ModelError as exc:
            pytest.fail(f"the embedded model is not available: {exc}")
        model_server.wait_ready(settings, started, timeout=300)
    yield settings
    if started is not None:
        model_server.stop_server(settings)
