"""Tools for tests of the generic machinery (loop, runner, store, server).

They mirror the calculator so flows read naturally, but they are defined here, so these
tests hold whatever tools the agent itself has.
"""

from __future__ import annotations

from calculator_agent.thread import Number
from calculator_agent.tools import Tool, Toolbox, ToolError


def _divide(a: Number, b: Number) -> Number:
    if b == 0:
        raise ToolError("cannot divide by zero")
    return a / b


TEST_TOOLS: Toolbox = {
    "add": Tool(lambda a, b: a + b),
    "subtract": Tool(lambda a, b: a - b),
    "multiply": Tool(lambda a, b: a * b),
    "divide": Tool(_divide, needs_approval=True),
}
