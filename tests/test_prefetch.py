from __future__ import annotations

import math

from calculator_agent.context import render_thread
from calculator_agent.prefetch import prefetch
from calculator_agent.thread import Thread, UserInput


def test_named_constants_are_fetched_before_the_first_llm_call() -> None:
    (event,) = prefetch("what is pi times 2?")
    assert event.data == {"pi": math.pi}
    thread = Thread(events=(UserInput(text="what is pi times 2?"), event))
    assert f"<constants>\npi: {math.pi}\n</constants>" in render_thread(thread)


def test_words_that_merely_contain_a_constant_are_ignored() -> None:
    assert prefetch("add the pixel counts 3 and 4") == []
    assert prefetch("multiply 3 by 4") == []
