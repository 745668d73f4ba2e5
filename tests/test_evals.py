"""Evals: loading, matching and reporting without a model; the real eval set with one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from calculator_agent import cli, evals
from calculator_agent.agent import Decision, NextStepError
from calculator_agent.context import render_thread
from calculator_agent.evals import Case, CaseFormatError, Expectation, check, parse_cases
from calculator_agent.llm import BamlNextStep
from calculator_agent.settings import Settings
from calculator_agent.thread import (
    Approval,
    Error,
    HumanResponse,
    StepTelemetry,
    Thread,
    ToolCall,
    ToolResponse,
    UserInput,
)

EVAL_SET = Path(__file__).parent / "evals" / "calculator.jsonl"
HOLDOUT_SET = Path(__file__).parent / "evals" / "holdout.jsonl"
MIN_PASS_RATE = 0.9


def line(events: list[dict[str, Any]], expect: dict[str, Any], name: str = "c") -> str:
    return json.dumps({"name": name, "events": events, "expect": expect})


def one(events: list[dict[str, Any]], expect: dict[str, Any] | None = None) -> Case:
    return parse_cases([line(events, expect or {"intent": "done_for_now"})])[0]


# --- loading --------------------------------------------------------------------------


def test_events_become_the_agents_own_thread() -> None:
    case = one(
        [
            {"type": "user_input", "data": "multiply 3 and x, then add 1"},
            {"type": "request_more_information", "data": {"message": "x?"}},
            {"type": "human_response", "data": "4"},
            {"type": "multiply", "data": {"a": 3, "b": 4}},
            {"type": "tool_response", "data": 12},
            {"type": "add", "data": {"intent": "add", "a": 12, "b": 1}},
            {"type": "error", "data": "add(a=12, b=1) failed: boom"},
        ]
    )
    events = case.thread.events
    assert isinstance(events[0], UserInput)
    assert isinstance(events[1], ToolCall)
    assert events[1].intent == "request_more_information"
    assert isinstance(events[2], HumanResponse)
    assert events[2].call_id == events[1].call_id
    assert isinstance(events[3], ToolCall)
    assert events[3].args == {"a": 3, "b": 4}
    assert not events[3].needs_approval
    assert isinstance(events[4], ToolResponse)
    assert events[4].call_id == events[3].call_id
    assert isinstance(events[5], ToolCall)
    assert events[5].args == {"a": 12, "b": 1}
    assert isinstance(events[6], Error)
    assert events[6].source == "tool"
    assert len({e.call_id for e in events if isinstance(e, ToolCall)}) == 3


def test_divide_needs_approval_and_its_result_follows_an_approval() -> None:
    case = one(
        [
            {"type": "user_input", "data": "divide 8 by 2"},
            {"type": "divide", "data": {"a": 8, "b": 2}},
            {"type": "tool_response", "data": 4},
        ]
    )
    call, approval, response = case.thread.events[1:]
    assert isinstance(call, ToolCall)
    assert call.needs_approval
    assert approval == Approval(call_id=call.call_id, approved=True, at=approval.at)
    assert isinstance(response, ToolResponse)
    assert response.result == 4


def test_a_denial_text_becomes_a_rejection_that_renders_as_that_text() -> None:
    text = "user denied the operation with feedback: use 5 instead"
    case = one(
        [
            {"type": "user_input", "data": "divide 20 by 4"},
            {"type": "divide", "data": {"a": 20, "b": 4}},
            {"type": "tool_response", "data": text},
        ]
    )
    rejection = case.thread.events[-1]
    assert isinstance(rejection, Approval)
    assert not rejection.approved
    assert rejection.feedback == "use 5 instead"
    assert render_thread(case.thread).endswith(f"<tool_response>\n{text}\n</tool_response>")


def test_an_error_with_no_tool_call_before_it_is_the_models() -> None:
    case = one([{"type": "user_input", "data": "add 1 and 2"}, {"type": "error", "data": "x"}])
    error = case.thread.events[-1]
    assert isinstance(error, Error)
    assert error.source == "llm"


def test_expectation_fields_are_read() -> None:
    case = one(
        [{"type": "user_input", "data": "hi"}],
        {"intent": "done_for_now", "args": {"a": 1}, "message_contains": ["x", "y"]},
    )
    assert case.expect == Expectation("done_for_now", {"a": 1}, ("x", "y"))


def test_blank_lines_are_skipped_and_line_numbers_kept() -> None:
    good = line([{"type": "user_input", "data": "hi"}], {"intent": "done_for_now"}, "a")
    cases = parse_cases(["", good, "  "])
    assert [(c.name, c.line) for c in cases] == [("a", 2)]


HI = {"type": "user_input", "data": "hi"}
ADD = {"intent": "add"}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "a case must be a JSON object, got a list"),
        ('{"name": "a", "events": []}', "missing key(s): expect"),
        (line([], ADD), "'events' must be a non-empty list"),
        (line([{"type": "user_input"}], ADD), "event 0: must have both"),
        (line([{"type": "user_input", "data": 3}], ADD), "user_input data must be text"),
        (line([{"type": "square", "data": {}}], ADD), "event 0: unknown type 'square'"),
        (line([{"type": "add", "data": [1, 2]}], ADD), "add data must be an object"),
        (line([{"type": "add", "data": {"intent": "sub"}}], ADD), "different 'intent'"),
        (line([{"type": "done_for_now", "data": {}}], ADD), "needs a 'message'"),
        (line([{"type": "tool_response", "data": 3}], ADD), "no earlier tool call"),
        (line([{"type": "human_response", "data": "3"}], ADD), "no earlier request_more"),
        (line([HI], {}), "'expect.intent' is required"),
        (line([HI], {**ADD, "arg": {}}), "unknown key(s) in 'expect': arg"),
        (line([HI], {**ADD, "args": 3}), "'expect.args' must be an object"),
        (line([HI], {**ADD, "message_contains": "7"}), "must be a list of strings"),
        (json.dumps({"name": "", "events": [], "expect": {}}), "'name' must be a non-empty"),
    ],
)
def test_bad_input_is_refused_with_the_line_and_the_reason(raw: str, message: str) -> None:
    with pytest.raises(CaseFormatError) as caught:
        parse_cases(["", raw])
    assert message in str(caught.value)
    assert "line 2" in str(caught.value)


def test_duplicate_names_and_empty_files_are_refused() -> None:
    good = line([{"type": "user_input", "data": "hi"}], {"intent": "done_for_now"}, "a")
    with pytest.raises(
        CaseFormatError, match=r"line 2: duplicate case name 'a' \(first on line 1\)"
    ):
        parse_cases([good, good])
    with pytest.raises(CaseFormatError, match="no cases"):
        parse_cases(["", ""])


def test_load_cases_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text("oops\n")
    with pytest.raises(CaseFormatError, match=r"bad\.jsonl:1: not valid JSON"):
        evals.load_cases(path)
    with pytest.raises(CaseFormatError, match="cannot read"):
        evals.load_cases(tmp_path / "missing.jsonl")


def test_the_shipped_eval_sets_load_and_are_big_enough() -> None:
    cases = evals.load_cases(EVAL_SET)
    assert len(cases) >= 40
    intents = {case.expect.intent for case in cases}
    assert intents == {
        "add", "subtract", "multiply", "divide", "request_more_information", "done_for_now"
    }  # fmt: skip
    assert evals.load_cases(HOLDOUT_SET)


# --- matching -------------------------------------------------------------------------


DONE = "done_for_now"
ASK = "request_more_information"


@pytest.mark.parametrize(
    ("expect", "intent", "args", "passed"),
    [
        (Expectation("add", {"a": 3, "b": 4}), "add", {"a": 3, "b": 4}, True),
        (Expectation("add", {"a": 3, "b": 4}), "add", {"a": 4.0, "b": 3}, True),
        (Expectation("multiply", {"a": 3, "b": 4}), "multiply", {"a": 4, "b": 3}, True),
        (Expectation("multiply", {"a": 3}), "multiply", {"a": 4, "b": 3}, True),
        (Expectation("subtract", {"a": 10, "b": 3}), "subtract", {"a": 3, "b": 10}, False),
        (Expectation("divide", {"a": 10, "b": 2}), "divide", {"a": 2, "b": 10}, False),
        (Expectation("divide", {"a": 7.5, "b": 0.5}), "divide", {"a": 7.5, "b": 0.5}, True),
        (Expectation("add", {"a": 0.3, "b": 1}), "add", {"a": 0.1 + 0.2, "b": 1}, True),
        (Expectation("add", {"a": 1, "b": 1}), "add", {"a": True, "b": 1}, False),
        (Expectation("add", {"a": 3, "b": 4}), "add", {"a": 3}, False),
        (Expectation("add", {"a": 3, "b": 4}), "multiply", {"a": 3, "b": 4}, False),
        (Expectation("add"), "add", {"a": 1, "b": 2}, True),
        (Expectation(DONE, None, ("18",)), DONE, {"message": "It is 18."}, True),
        (Expectation(DONE, None, ("eighteen", "IS")), DONE, {"message": "It is Eighteen"}, True),
        (Expectation(DONE, None, ("18",)), DONE, {"message": "It is 12."}, False),
        (Expectation(DONE, None, ("18", "x")), DONE, {"message": "18"}, False),
        (Expectation(ASK, {"message": "Which?"}), ASK, {"message": " which? "}, True),
    ],
)
def test_check(expect: Expectation, intent: str, args: dict[str, Any], passed: bool) -> None:
    assert (check(expect, intent, args) == []) is passed


def test_check_says_what_is_wrong() -> None:
    assert check(Expectation("subtract", {"a": 10, "b": 3}), "subtract", {"a": 3, "b": 10}) == [
        "a=3, expected 10",
        "b=10, expected 3",
    ]
    assert check(Expectation("add"), "multiply", {}) == ["intent 'multiply', expected 'add'"]
    assert check(Expectation("done_for_now", None, ("18",)), "done_for_now", {"message": "12"}) == [
        "message lacks '18'"
    ]


# --- running and reporting ------------------------------------------------------------


class Scripted:
    def __init__(self, *answers: Decision | NextStepError) -> None:
        self.answers = list(answers)
        self.seen: list[Thread] = []

    def __call__(self, thread: Thread) -> Decision:
        self.seen.append(thread)
        answer = self.answers.pop(0)
        if isinstance(answer, NextStepError):
            raise answer
        return answer


THREE_CASES = [
    line([HI], {"intent": "multiply", "args": {"a": 3, "b": 4}}, "mul"),
    line([HI], {"intent": ASK}, "hi"),
    line([HI], {"intent": "subtract", "args": {"a": 10, "b": 3}}, "sub"),
]


def test_run_cases_calls_the_next_step_once_per_case_and_reports() -> None:
    cases = parse_cases(THREE_CASES)
    telemetry = StepTelemetry(latency_s=1.5, input_tokens=100, output_tokens=10)
    next_step = Scripted(
        Decision("multiply", {"a": 4, "b": 3}, telemetry),
        NextStepError("could not parse the model's answer: hello"),
        Decision("subtract", {"a": 3, "b": 10}, telemetry),
    )
    seen: list[str] = []
    results = evals.run_cases(cases, next_step, lambda i, r: seen.append(f"{i}:{r.name}"))
    assert seen == ["0:mul", "1:hi", "2:sub"]
    assert [t.events for t in next_step.seen] == [c.thread.events for c in cases]
    assert [r.passed for r in results] == [True, False, False]
    assert results[1].intent is None
    assert results[1].problems == ("could not parse the model's answer: hello",)
    assert "error: could not parse" in results[1].describe_got()

    data = evals.report(results, client="Local")
    json.dumps(data)  # serializable as is
    assert data["client"] == "Local"
    first = data["cases"][0]
    assert first["name"] == "mul"
    assert first["passed"] is True
    assert first["intent"] == "multiply"
    assert first["args"] == {"a": 4, "b": 3}
    assert first["message"] is None
    assert first["latency_s"] == 1.5
    assert (first["input_tokens"], first["output_tokens"]) == (100, 10)
    assert data["cases"][2]["problems"] == ["a=3, expected 10", "b=10, expected 3"]
    totals = data["totals"]
    assert (totals["total"], totals["passed"], totals["failed"]) == (3, 1, 2)
    assert totals["pass_rate"] == pytest.approx(1 / 3, abs=1e-4)
    assert (totals["input_tokens"], totals["output_tokens"]) == (200, 20)
    assert totals["per_step"]["input_tokens"] == 100
    assert evals.totals(results).summary == "1 passed, 2 failed"


# --- the CLI --------------------------------------------------------------------------


def write(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "cases.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def scripted_cli(monkeypatch: pytest.MonkeyPatch) -> Scripted:
    telemetry = StepTelemetry(latency_s=0.25, input_tokens=900, output_tokens=20)
    script = Scripted(
        Decision("multiply", {"a": 3, "b": 4}, telemetry),
        Decision("request_more_information", {"message": "What should I do?"}, telemetry),
        Decision("subtract", {"a": 3, "b": 10}, telemetry),
    )
    monkeypatch.setattr(cli, "BamlNextStep", lambda settings: script)
    monkeypatch.setattr(cli, "ensure_model", lambda settings: None)
    return script


def test_eval_command_prints_a_table_and_the_summary_and_writes_a_report(
    tmp_path: Path, scripted_cli: Scripted
) -> None:
    report_path = tmp_path / "out" / "report.json"
    result = CliRunner().invoke(
        cli.app, ["eval", str(write(tmp_path, THREE_CASES)), "--report", str(report_path)]
    )
    assert result.exit_code == 0, result.output
    assert "mul" in result.output
    assert "FAIL" in result.output
    assert result.output.rstrip().endswith("2 passed, 1 failed")
    data = json.loads(report_path.read_text())
    assert [(c["name"], c["passed"]) for c in data["cases"]] == [
        ("mul", True), ("hi", True), ("sub", False)
    ]  # fmt: skip
    assert data["cases"][1]["message"] == "What should I do?"
    assert data["totals"]["passed"] == 2


def test_eval_command_fails_below_the_minimum_pass_rate(
    tmp_path: Path, scripted_cli: Scripted
) -> None:
    result = CliRunner().invoke(
        cli.app, ["eval", str(write(tmp_path, THREE_CASES)), "--min-pass-rate", "0.9"]
    )
    assert result.exit_code == 1
    assert "2 passed, 1 failed" in result.output


def test_eval_command_refuses_a_bad_file_before_calling_the_model(
    tmp_path: Path, scripted_cli: Scripted
) -> None:
    result = CliRunner().invoke(cli.app, ["eval", str(write(tmp_path, [THREE_CASES[0], "{"]))])
    assert result.exit_code == 2
    assert scripted_cli.seen == []


# --- the real model -------------------------------------------------------------------


@pytest.mark.model
@pytest.mark.parametrize("path", [EVAL_SET, HOLDOUT_SET], ids=["eval-set", "holdout"])
def test_the_eval_sets_pass_on_the_embedded_model(path: Path, model_settings: Settings) -> None:
    cases = evals.load_cases(path)
    results = evals.run_cases(cases, BamlNextStep(model_settings))
    summary = evals.totals(results)
    failures = [
        f"{r.name}: {r.describe_got()} ({'; '.join(r.problems)})" for r in results if not r.passed
    ]
    assert summary.pass_rate >= MIN_PASS_RATE, "\n".join([summary.summary, *failures])
    # Telemetry comes from BAML's collector on every step.
    assert all(r.input_tokens and r.output_tokens for r in results if r.intent is not None)
