"""Fixtures for the server tests: an app over a temporary store with a scripted LLM."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from calculator_agent.agent import NextStep
from calculator_agent.server import create_app
from calculator_agent.server.app import Services
from calculator_agent.server.schemas import LLMHealth
from calculator_agent.store import SQLiteStore, ThreadStore
from calculator_agent.tools import Toolbox

from tests.helpers import CalculatorBrain
from tests.server.helpers import MakeApp, settings_for
from tests.toolbox import TEST_TOOLS


@pytest.fixture
def make_app(tmp_path: Path) -> Iterator[MakeApp]:
    """make_app(next_step=..., store=..., tools=..., llm_up=..., **settings) -> (client, services).

    The client is entered (lifespan running: recovery sweep, background loops) and closed
    at teardown.
    """
    stack = ExitStack()

    def make(
        *,
        next_step: NextStep | None = None,
        store: ThreadStore | None = None,
        tools: Toolbox = TEST_TOOLS,
        llm_up: bool = True,
        **overrides: Any,
    ) -> tuple[TestClient, Services]:
        settings = settings_for(tmp_path, **overrides)
        app = create_app(
            settings,
            store=store or SQLiteStore(tmp_path / "threads.sqlite3"),
            next_step=next_step or CalculatorBrain(),
            tools=tools,
            llm_probe=lambda: LLMHealth(client="Local", answering=llm_up),
        )
        client = stack.enter_context(TestClient(app))
        return client, app.state.agent

    with stack:
        yield make
