"""Evals: run recorded threads through the real next step and check what it chose.

A case file is JSON Lines, one case per line:

    {"name": "...", "events": [{"type": T, "data": D}, ...],
     "expect": {"intent": "...", "args": {...}, "message_contains": ["..."]}}

Loading, matching and the report are pure (unit-tested without a model); `run_cases`
takes any `NextStep`, so the eval exercises exactly the prompt and context format the
agent uses in production (`BamlNextStep`).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .agent import NextStep, NextStepError
from .context import REJECTED_PREFIX
from .thread import (
    ASK_HUMAN,
    DONE,
    Approval,
    Error,
    Event,
    HumanResponse,
    Thread,
    ToolCall,
    ToolResponse,
    UserInput,
)
from .tools import TOOLS, Toolbox

# The two operands of these may come in either order.
COMMUTATIVE = frozenset({"add", "multiply"})
TEXT_EVENTS = ("user_input", "human_response", "error")
CASE_KEYS = frozenset({"name", "events", "expect"})
EXPECT_KEYS = frozenset({"intent", "args", "message_contains"})


class CaseFormatError(ValueError):
    """A case file that does not follow the format; the message names the line."""


@dataclass(frozen=True)
class Expectation:
    intent: str
    args: Mapping[str, Any] | None = None
    message_contains: tuple[str, ...] = ()

    def describe(self) -> str:
        return _describe(self.intent, self.args or {}, self.message_contains)


@dataclass(frozen=True)
class Case:
    name: str
    thread: Thread
    expect: Expectation
    line: int = 0


@dataclass(frozen=True)
class CaseResult:
    name: str
    passed: bool
    expect: Expectation
    intent: str | None
    args: Mapping[str, Any]
    latency_s: float
    input_tokens: int | None = None
    output_tokens: int | None = None
    # Why it failed: unmet expectations, or the step's error (unparseable answer...).
    problems: tuple[str, ...] = ()

    @property
    def message(self) -> str | None:
        value = self.args.get("message")
        return None if value is None else str(value)

    def describe_got(self) -> str:
        if self.intent is None:
            return "error: " + "; ".join(self.problems)
        return _describe(self.intent, {k: v for k, v in self.args.items() if k != "message"}, ())


# --- loading --------------------------------------------------------------------------


def load_cases(path: Path, tools: Toolbox = TOOLS) -> list[Case]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CaseFormatError(f"{path}: cannot read: {exc.strerror or exc}") from None
    return parse_cases(text.splitlines(), tools, source=str(path))


def parse_cases(lines: Iterable[str], tools: Toolbox = TOOLS, source: str = "") -> list[Case]:
    """Parse JSON Lines (blank lines skipped); any problem raises with its line number."""
    cases: list[Case] = []
    seen: dict[str, int] = {}
    prefix = f"{source}:" if source else "line "
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        where = f"{prefix}{number}"
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise CaseFormatError(
                f"{where}: not valid JSON: {exc.msg} (column {exc.colno})"
            ) from None
        try:
            case = parse_case(obj, tools, line=number)
        except CaseFormatError as exc:
            raise CaseFormatError(f"{where}: {exc}") from None
        if case.name in seen:
            raise CaseFormatError(
                f"{where}: duplicate case name {case.name!r} (first on line {seen[case.name]})"
            )
        seen[case.name] = number
        cases.append(case)
    if not cases:
        raise CaseFormatError(f"{source or 'input'}: no cases")
    return cases


def parse_case(obj: Any, tools: Toolbox = TOOLS, line: int = 0) -> Case:
    if not isinstance(obj, dict):
        raise CaseFormatError(f"a case must be a JSON object, got {_kind(obj)}")
    missing = sorted(CASE_KEYS - obj.keys())
    if missing:
        raise CaseFormatError(f"missing key(s): {', '.join(missing)}")
    name = obj["name"]
    if not isinstance(name, str) or not name.strip():
        raise CaseFormatError("'name' must be a non-empty string")
    try:
        thread = to_thread(obj["events"], tools)
        expect = parse_expectation(obj["expect"])
    except CaseFormatError as exc:
        raise CaseFormatError(f"case {name!r}: {exc}") from None
    return Case(name=name, thread=thread, expect=expect, line=line)


def parse_expectation(obj: Any) -> Expectation:
    if not isinstance(obj, dict):
        raise CaseFormatError(f"'expect' must be an object, got {_kind(obj)}")
    unknown = sorted(obj.keys() - EXPECT_KEYS)
    if unknown:
        # An unknown key would silently check nothing: refuse it.
        raise CaseFormatError(
            f"unknown key(s) in 'expect': {', '.join(unknown)} "
            f"(allowed: {', '.join(sorted(EXPECT_KEYS))})"
        )
    intent = obj.get("intent")
    if not isinstance(intent, str) or not intent:
        raise CaseFormatError("'expect.intent' is required and must be a string")
    args = obj.get("args")
    if args is not None and not isinstance(args, dict):
        raise CaseFormatError(f"'expect.args' must be an object, got {_kind(args)}")
    contains = obj.get("message_contains", [])
    if not isinstance(contains, list) or not all(isinstance(s, str) for s in contains):
        raise CaseFormatError("'expect.message_contains' must be a list of strings")
    return Expectation(intent=intent, args=args, message_contains=tuple(contains))


def to_thread(events: Any, tools: Toolbox = TOOLS) -> Thread:
    """Case events -> the agent's own Thread, shaped as the agent would have written it."""
    if not isinstance(events, list) or not events:
        raise CaseFormatError("'events' must be a non-empty list")
    intents = {*tools, ASK_HUMAN, DONE}
    thread = Thread()
    for index, item in enumerate(events):
        try:
            for event in _to_events(item, thread, tools, intents, index):
                thread = thread.append(event)
        except CaseFormatError as exc:
            raise CaseFormatError(f"event {index}: {exc}") from None
    return thread


def _to_events(
    item: Any, thread: Thread, tools: Toolbox, intents: set[str], index: int
) -> list[Event]:
    if not isinstance(item, dict):
        raise CaseFormatError(f"must be an object with 'type' and 'data', got {_kind(item)}")
    if "type" not in item or "data" not in item:
        raise CaseFormatError("must have both 'type' and 'data'")
    kind, data = item["type"], item["data"]
    if not isinstance(kind, str):
        raise CaseFormatError(f"'type' must be a string, got {_kind(kind)}")
    if kind in TEXT_EVENTS and not isinstance(data, str):
        raise CaseFormatError(f"{kind} data must be text, got {_kind(data)}")
    match kind:
        case "user_input":
            return [UserInput(text=data)]
        case "human_response":
            question = _last_call(thread, lambda c: c.intent == ASK_HUMAN)
            if question is None:
                raise CaseFormatError(f"human_response with no earlier {ASK_HUMAN}")
            return [HumanResponse(call_id=question.call_id, text=data)]
        case "error":
            last = thread.events[-1] if thread.events else None
            source = "tool" if isinstance(last, ToolCall) and last.intent in tools else "llm"
            return [Error(source=source, message=data)]
        case "tool_response":
            return _tool_response(data, thread, tools)
        case intent if intent in intents:
            return [_tool_call(intent, data, tools, index)]
        case _:
            known = ", ".join(["user_input", "tool_response", "human_response", "error", *intents])
            raise CaseFormatError(f"unknown type {kind!r} (known: {known})")


def _tool_call(intent: str, data: Any, tools: Toolbox, index: int) -> ToolCall:
    if not isinstance(data, dict):
        raise CaseFormatError(f"{intent} data must be an object of its fields, got {_kind(data)}")
    args = dict(data)
    if args.pop("intent", intent) != intent:
        raise CaseFormatError(f"{intent} data has a different 'intent': {data['intent']!r}")
    if intent in (ASK_HUMAN, DONE) and not isinstance(args.get("message"), str):
        raise CaseFormatError(f"{intent} data needs a 'message' string")
    tool = tools.get(intent)
    return ToolCall(
        call_id=f"call-{index}",
        intent=intent,
        args=args,
        needs_approval=tool is not None and tool.needs_approval,
    )


def _tool_response(data: Any, thread: Thread, tools: Toolbox) -> list[Event]:
    if isinstance(data, bool) or not isinstance(data, int | float | str):
        raise CaseFormatError(f"tool_response data must be a number or text, got {_kind(data)}")
    call = _last_call(thread, lambda c: c.intent in tools)
    if call is None:
        raise CaseFormatError("tool_response with no earlier tool call")
    if call.needs_approval and isinstance(data, str) and data.startswith(REJECTED_PREFIX.strip()):
        # What the agent really records for a rejection; it renders as this very text.
        feedback = data[len(REJECTED_PREFIX.strip()) :].strip()
        return [Approval(call_id=call.call_id, approved=False, feedback=feedback or None)]
    approval: list[Event] = []
    if call.needs_approval:
        approval.append(Approval(call_id=call.call_id, approved=True))
    return [*approval, ToolResponse(call_id=call.call_id, result=data)]


def _last_call(thread: Thread, wanted: Callable[[ToolCall], bool]) -> ToolCall | None:
    for event in reversed(thread.events):
        if isinstance(event, ToolCall) and wanted(event):
            return event
    return None


def _kind(value: Any) -> str:
    return {
        dict: "an object",
        list: "a list",
        str: "text",
        bool: "a boolean",
        int: "a number",
        float: "a number",
        type(None): "null",
    }.get(type(value), type(value).__name__)


# --- matching -------------------------------------------------------------------------


def values_match(expected: Any, got: Any) -> bool:
    """Numbers compare numerically (3 == 3.0); text case-insensitively; others exactly."""
    if _is_number(expected) and _is_number(got):
        return math.isclose(float(expected), float(got), rel_tol=1e-9, abs_tol=1e-9)
    if isinstance(expected, str) and isinstance(got, str):
        return expected.strip().lower() == got.strip().lower()
    if isinstance(expected, bool) or isinstance(got, bool):
        return expected is got  # True is not the operand 1
    return bool(expected == got)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def args_problems(intent: str, expected: Mapping[str, Any], got: Mapping[str, Any]) -> list[str]:
    """What in `expected` the call's fields do not match; [] when all match."""

    def problems(want: Mapping[str, Any]) -> list[str]:
        out = []
        for key, value in want.items():
            if key not in got:
                out.append(f"missing {key} (expected {value!r})")
            elif not values_match(value, got[key]):
                out.append(f"{key}={got[key]!r}, expected {value!r}")
        return out

    straight = problems(expected)
    if not straight or intent not in COMMUTATIVE or not set(expected) <= {"a", "b"}:
        return straight
    swapped = {("b" if key == "a" else "a"): value for key, value in expected.items()}
    return [] if not problems(swapped) else straight


def check(expect: Expectation, intent: str, args: Mapping[str, Any]) -> list[str]:
    """Every unmet expectation, or [] when the step passes."""
    if intent != expect.intent:
        return [f"intent {intent!r}, expected {expect.intent!r}"]
    found: list[str] = []
    if expect.args:
        found += args_problems(intent, expect.args, args)
    message = str(args.get("message", "")).lower()
    found += [
        f"message lacks {needle!r}"
        for needle in expect.message_contains
        if needle.lower() not in message
    ]
    return found


# --- running --------------------------------------------------------------------------


def run_case(case: Case, next_step: NextStep) -> CaseResult:
    """One next step for the case's thread: no tools run, no loop."""
    started = time.perf_counter()
    try:
        decision = next_step(case.thread)
    except NextStepError as exc:
        return CaseResult(
            name=case.name,
            passed=False,
            expect=case.expect,
            intent=None,
            args={},
            latency_s=round(time.perf_counter() - started, 3),
            problems=(str(exc),),
        )
    telemetry = decision.telemetry
    problems = check(case.expect, decision.intent, decision.args)
    return CaseResult(
        name=case.name,
        passed=not problems,
        expect=case.expect,
        intent=decision.intent,
        args=decision.args,
        latency_s=(telemetry.latency_s if telemetry else round(time.perf_counter() - started, 3)),
        input_tokens=telemetry.input_tokens if telemetry else None,
        output_tokens=telemetry.output_tokens if telemetry else None,
        problems=tuple(problems),
    )


def run_cases(
    cases: Sequence[Case],
    next_step: NextStep,
    on_result: Callable[[int, CaseResult], None] | None = None,
) -> list[CaseResult]:
    results = []
    for index, case in enumerate(cases):
        result = run_case(case, next_step)
        results.append(result)
        if on_result is not None:
            on_result(index, result)
    return results


# --- report ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Totals:
    total: int
    passed: int
    failed: int
    pass_rate: float
    latency_s: float
    input_tokens: int
    output_tokens: int
    per_step: dict[str, float | None] = field(default_factory=dict)

    @property
    def summary(self) -> str:
        return f"{self.passed} passed, {self.failed} failed"


def totals(results: Sequence[CaseResult]) -> Totals:
    passed = sum(r.passed for r in results)
    count = len(results)
    latency = sum(r.latency_s for r in results)
    inputs = [r.input_tokens for r in results if r.input_tokens is not None]
    outputs = [r.output_tokens for r in results if r.output_tokens is not None]
    return Totals(
        total=count,
        passed=passed,
        failed=count - passed,
        pass_rate=round(passed / count, 4) if count else 0.0,
        latency_s=round(latency, 3),
        input_tokens=sum(inputs),
        output_tokens=sum(outputs),
        per_step={
            "latency_s": round(latency / count, 3) if count else None,
            "input_tokens": round(sum(inputs) / len(inputs), 1) if inputs else None,
            "output_tokens": round(sum(outputs) / len(outputs), 1) if outputs else None,
        },
    )


def report(results: Sequence[CaseResult], **meta: Any) -> dict[str, Any]:
    """The JSON report: one entry per case, then totals; `meta` (client, model...) on top."""
    summary = totals(results)
    return {
        **meta,
        "cases": [
            {
                "name": r.name,
                "passed": r.passed,
                "expected": {
                    "intent": r.expect.intent,
                    "args": dict(r.expect.args) if r.expect.args is not None else None,
                    "message_contains": list(r.expect.message_contains),
                },
                "intent": r.intent,
                "args": {k: v for k, v in r.args.items() if k != "message"},
                "message": r.message,
                "latency_s": r.latency_s,
                "input_tokens": r.input_tokens,
                "output_tokens": r.output_tokens,
                "problems": list(r.problems),
            }
            for r in results
        ],
        "totals": {
            "total": summary.total,
            "passed": summary.passed,
            "failed": summary.failed,
            "pass_rate": summary.pass_rate,
            "latency_s": summary.latency_s,
            "input_tokens": summary.input_tokens,
            "output_tokens": summary.output_tokens,
            "per_step": summary.per_step,
        },
    }


def _describe(intent: str, args: Mapping[str, Any], contains: Sequence[str]) -> str:
    parts = [f"{key}={value}" for key, value in args.items()]
    parts += [f"message~{needle!r}" for needle in contains]
    return f"{intent}({', '.join(parts)})"
