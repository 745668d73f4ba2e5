"""The CLI as a user drives it, on seeded threads (no LLM call)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from calculator_agent.cli import app
from calculator_agent.store import SQLiteStore
from calculator_agent.thread import (
    Thread,
    ToolCall,
    UserInput,
    status,
)

cli = CliRunner()


@pytest.fixture(autouse=True)
def local_client(monkeypatch: pytest.MonkeyPatch) -> None:
    """These commands never call the LLM; the Local client needs no API key to build."""
    monkeypatch.setenv("AGENT_LLM_CLIENT", "Local")


def seed_paused(data_dir: Path) -> Thread:
    thread = Thread(
        events=(
            UserInput(text="divide 12 by 2"),
            ToolCall(call_id="call1", intent="divide", args={"a": 12, "b": 2}, needs_approval=True),
        )
    )
    SQLiteStore(data_dir / "threads.sqlite3").create(thread)
    return thread


def test_show_formats(data_dir: Path) -> None:
    thread = seed_paused(data_dir)
    markdown = cli.invoke(app, ["show", thread.id])
    assert markdown.exit_code == 0, markdown.output
    assert "waiting for approval of divide(a=12, b=2)" in markdown.output

    as_json = cli.invoke(app, ["show", thread.id, "--format", "json"])
    assert Thread.model_validate(json.loads(as_json.output)) == thread

    context = cli.invoke(app, ["show", thread.id, "-f", "context"])
    assert context.output.strip() == (
        "<user_input>\ndivide 12 by 2\n</user_input>\n\n<divide>\na: 12\nb: 2\n</divide>"
    )


def test_list_filters_by_status(data_dir: Path) -> None:
    thread = seed_paused(data_dir)
    assert thread.id in cli.invoke(app, ["list", "--status", "waiting_for_approval"]).output
    assert thread.id not in cli.invoke(app, ["list", "--status", "done"]).output
    bad = cli.invoke(app, ["list", "--status", "sleeping"])
    assert bad.exit_code == 2
    assert "--status must be one of" in bad.output


def test_fork_copies_events_up_to_n(data_dir: Path) -> None:
    thread = seed_paused(data_dir)
    result = cli.invoke(app, ["fork", thread.id, "--at", "0"])
    assert result.exit_code == 0, result.output
    store = SQLiteStore(data_dir / "threads.sqlite3")
    forks = [row for row in store.list() if row.id != thread.id]
    assert len(forks) == 1
    forked = store.get(forks[0].id).thread
    assert forked.events == thread.events[:1]
    assert status(forked).kind == "running"
    out_of_range = cli.invoke(app, ["fork", thread.id, "--at", "5"])
    assert out_of_range.exit_code == 2
    assert "between 0 and 1" in out_of_range.output


def test_unknown_thread_and_wrong_answers_are_clear_errors(data_dir: Path) -> None:
    missing = cli.invoke(app, ["show", "nope"])
    assert missing.exit_code == 1
    assert "no thread 'nope'" in missing.output

    thread = seed_paused(data_dir)
    wrong = cli.invoke(app, ["resume", thread.id, "--answer", "5", "--no-interactive"])
    assert wrong.exit_code == 1
    assert "not waiting for an answer" in wrong.output
    both = cli.invoke(app, ["resume", thread.id, "--approve", "--answer", "5"])
    assert both.exit_code == 2


def test_prompt_prints_the_request_the_llm_would_get(data_dir: Path) -> None:
    thread = seed_paused(data_dir)
    result = cli.invoke(app, ["prompt", thread.id])
    assert result.exit_code == 0, result.output
    request = json.loads(result.output)
    assert request["url"].endswith("/chat/completions")
    assert "<divide>\na: 12\nb: 2\n</divide>" in request["body"]["messages"][-1]["content"]
