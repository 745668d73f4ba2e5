from __future__ import annotations

import pytest

from calculator_agent.agent import NextStepError
from calculator_agent.llm import parse_answer
from calculator_agent.tools import TOOLS, ToolError, run_tool


@pytest.mark.parametrize(
    ("intent", "a", "b", "expected"),
    [("add", 2, 3, 5), ("subtract", 10, 3, 7), ("multiply", -2, 2.5, -5.0), ("divide", 7, 2, 3.5)],
)
def test_calculator_tools(intent: str, a: float, b: float, expected: float) -> None:
    assert run_tool(TOOLS[intent], {"a": a, "b": b}) == expected


def test_divide_by_zero_is_a_tool_error() -> None:
    with pytest.raises(ToolError, match="cannot divide by zero"):
        run_tool(TOOLS["divide"], {"a": 1, "b": 0})


def test_only_divide_needs_approval() -> None:
    assert {name for name, tool in TOOLS.items() if tool.needs_approval} == {"divide"}


@pytest.mark.parametrize(
    ("raw", "intent", "args"),
    [
        ('{"intent": "multiply", "a": 3, "b": 4}', "multiply", {"a": 3, "b": 4}),
        ('```json\n{"intent": "divide", "a": 12, "b": 2.5}\n```', "divide", {"a": 12, "b": 2.5}),
        ('{intent: "subtract", a: -1.5, b: 2}', "subtract", {"a": -1.5, "b": 2}),
    ],
)
def test_model_answers_parse_into_calculator_calls(
    raw: str, intent: str, args: dict[str, float]
) -> None:
    decision = parse_answer(raw)
    assert (decision.intent, decision.args) == (intent, args)


def test_a_non_numeric_operand_does_not_parse() -> None:
    with pytest.raises(NextStepError, match="could not parse"):
        parse_answer('{"intent": "multiply", "a": "three", "b": 4}')
