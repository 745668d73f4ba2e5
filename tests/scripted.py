"""A scripted NextStep for deterministic tests of the loop: no LLM involved."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from calculator_agent.agent import Decision, NextStepError
from calculator_agent.thread import Thread


class ScriptedNextStep:
    """Returns the given decisions in order; an Exception instance is raised instead."""

    def __init__(self, steps: Iterable[Decision | Exception]) -> None:
        self._steps = list(steps)
        self.seen: list[Thread] = []

    def __call__(self, thread: Thread) -> Decision:
        self.seen.append(thread)
        if not self._steps:
            raise AssertionError("the loop asked for more steps than were scripted")
        step = self._steps.pop(0)
        if isinstance(step, Exception):
            raise step
        return step

    @property
    def remaining(self) -> int:
        return len(self._steps)


def call(intent: str, **args: Any) -> Decision:
    return Decision(intent=intent, args=args)


def garbage(message: str = "could not parse the model's answer: ???") -> NextStepError:
    return NextStepError(message)
