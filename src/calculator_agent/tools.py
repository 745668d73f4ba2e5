"""The calculator tools: deterministic code the model can ask for by intent name."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .thread import Number, ToolResult


class ToolError(Exception):
    """A tool refused its input; the message goes into the thread for the model to see."""


@dataclass(frozen=True)
class Tool:
    run: Callable[..., ToolResult]
    needs_approval: bool = False


Toolbox = Mapping[str, Tool]


def add(a: Number, b: Number) -> Number:
    return a + b


def subtract(a: Number, b: Number) -> Number:
    return a - b


def multiply(a: Number, b: Number) -> Number:
    return a * b


def divide(a: Number, b: Number) -> Number:
    if b == 0:
        raise ToolError("cannot divide by zero")
    return a / b


TOOLS: Toolbox = {
    "add": Tool(add),
    "subtract": Tool(subtract),
    "multiply": Tool(multiply),
    # Division is the reference agent's example of a call a human must approve first.
    "divide": Tool(divide, needs_approval=True),
}


def run_tool(tool: Tool, args: Mapping[str, Any]) -> ToolResult:
    return tool.run(**args)
