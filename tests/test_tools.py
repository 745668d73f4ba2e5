from __future__ import annotations

import pytest

from calculator_agent.tools import CALCULATOR, ToolError, run_tool


@pytest.mark.parametrize(
    ("intent", "a", "b", "expected"),
    [("add", 2, 3, 5), ("subtract", 10, 3, 7), ("multiply", -2, 2.5, -5.0), ("divide", 7, 2, 3.5)],
)
def test_calculator_tools(intent: str, a: float, b: float, expected: float) -> None:
    assert run_tool(CALCULATOR[intent], {"a": a, "b": b}) == expected


def test_divide_by_zero_is_a_tool_error() -> None:
    with pytest.raises(ToolError, match="cannot divide by zero"):
        run_tool(CALCULATOR["divide"], {"a": 1, "b": 0})


def test_only_divide_needs_approval() -> None:
    assert {name for name, tool in CALCULATOR.items() if tool.needs_approval} == {"divide"}
