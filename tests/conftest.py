"""Shared fixtures. Tests marked `model` use the real embedded model server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from calculator_agent import model_server
from calculator_agent.llm import LLMConfigError, check_configured
from calculator_agent.settings import Settings, get_settings


@pytest.fixture(scope="session")
def model_settings() -> Iterator[Settings]:
    """Settings whose configured LLM answers, or a skip that says why it cannot here.

    For the embedded model this reuses a running server or starts one; the model file lives
    in the project's .data dir (as for `run`), so it is joined and verified once per machine.
    """
    settings = Settings(data_dir=Path(".data"))
    if not settings.uses_local_client:
        try:
            check_configured(settings)
        except LLMConfigError as exc:
            pytest.skip(f"the configured LLM cannot be reached from tests: {exc}")
        yield settings
        return
    started = None
    if not model_server.is_listening(settings.local_llm_base_url):
        if not model_server.needs_autostart(settings):
            pytest.skip(f"nothing answers at {settings.local_llm_base_url}")
        try:
            started = model_server.start_server(settings)
        except model_server.ModelError as exc:
            pytest.fail(f"the embedded model is not available: {exc}")
        model_server.wait_ready(settings, started, timeout=300)
    yield settings
    if started is not None:
        model_server.stop_server(settings)


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh data dir (store, logs) for CLI commands, which read settings from the env."""
    monkeypatch.setenv("AGENT_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("AGENT_DATABASE_URL", "")  # the embedded store, whatever the default
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()
