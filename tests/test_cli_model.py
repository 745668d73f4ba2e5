"""The CLI on the real embedded model: a whole run, through an approval, to the answer."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from calculator_agent.cli import app
from calculator_agent.settings import Settings
from calculator_agent.store import SQLiteStore
from calculator_agent.thread import Approval, Done, ToolResponse, status

cli = CliRunner()


@pytest.mark.model
def test_run_pauses_for_divide_approval_and_finishes_with_the_right_answer(
    model_settings: Settings, data_dir: Path
) -> None:
    result = cli.invoke(
        app,
        ["run", "--interactive", "can you multiply 3 and 4, then divide the result by 2?"],
        input="\n",  # Enter approves the pending divide
    )
    assert result.exit_code == 0, result.output
    assert "Approve divide(a=12, b=2)?" in result.output
    store = SQLiteStore(data_dir / "threads.sqlite3")
    (row,) = store.list()
    thread = store.get(row.id).thread
    final = status(thread)
    assert isinstance(final, Done)
    assert "6" in final.message
    approvals = [e for e in thread.events if isinstance(e, Approval)]
    assert len(approvals) == 1
    assert approvals[0].approved
    assert [e.result for e in thread.events if isinstance(e, ToolResponse)] == [12, 6]


@pytest.mark.model
def test_run_without_a_terminal_pauses_and_resume_approves(
    model_settings: Settings, data_dir: Path
) -> None:
    launched = cli.invoke(app, ["run", "--no-interactive", "what is 20 divided by 4?"])
    assert launched.exit_code == 0, launched.output
    assert "Paused: waiting for approval of divide(a=20, b=4)" in launched.output
    (row,) = SQLiteStore(data_dir / "threads.sqlite3").list()
    resumed = cli.invoke(app, ["resume", row.id, "--approve", "--no-interactive"])
    assert resumed.exit_code == 0, resumed.output
    thread = SQLiteStore(data_dir / "threads.sqlite3").get(row.id).thread
    final = status(thread)
    assert isinstance(final, Done)
    assert "5" in final.message
