"""Factor 3 benchmark: tokens of our context format vs. standard OpenAI chat messages.

Renders every eval thread twice, as `render_thread` does (what DetermineNextStep gets)
and as the OpenAI chat-messages JSON a framework agent would send (tool calls as
assistant `tool_calls`, tool results and rejections as `tool` messages), counts both
with the embedded model's own tokenizer, and prints the ratio ours / chat JSON.

    uv run python benchmarks/context_tokens.py [CASES.jsonl ...]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from llama_cpp import Llama

from calculator_agent import model_server
from calculator_agent.context import REJECTED_PREFIX, format_number, render_thread
from calculator_agent.evals import load_cases
from calculator_agent.settings import Settings
from calculator_agent.thread import (
    ASK_HUMAN,
    DONE,
    Approval,
    Error,
    HumanResponse,
    Prefetched,
    Thread,
    ToolCall,
    ToolResponse,
    UserInput,
)

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CASES = ROOT / "tests" / "evals" / "calculator.jsonl"


def to_chat_messages(thread: Thread) -> list[dict[str, Any]]:
    """The thread as OpenAI chat messages; the same events our format leaves out are left out."""
    messages: list[dict[str, Any]] = []
    last_call: ToolCall | None = None
    for event in thread.events:
        match event:
            case UserInput(text=text) | HumanResponse(text=text):
                messages.append({"role": "user", "content": text})
            case Prefetched(name=name, data=data):
                messages.append({"role": "system", "content": json.dumps({name: data})})
            case ToolCall(intent=intent) if intent in (ASK_HUMAN, DONE):
                messages.append({"role": "assistant", "content": event.message})
            case ToolCall(intent=intent, args=args, call_id=call_id):
                last_call = event
                arguments = json.dumps({k: format_number(v) for k, v in args.items()})
                messages.append(
                    {
                        "role": "assistant",
                        "content": None,
                        "tool_calls": [
                            {
                                "id": call_id,
                                "type": "function",
                                "function": {"name": intent, "arguments": arguments},
                            }
                        ],
                    }
                )
            case ToolResponse(call_id=call_id, result=result):
                content = str(format_number(result))
                messages.append({"role": "tool", "tool_call_id": call_id, "content": content})
            case Approval(approved=False, call_id=call_id, feedback=feedback):
                content = REJECTED_PREFIX + (feedback or "no reason given")
                messages.append({"role": "tool", "tool_call_id": call_id, "content": content})
            case Error(source="tool", message=message) if last_call is not None:
                messages.append(
                    {"role": "tool", "tool_call_id": last_call.call_id, "content": message}
                )
            case Error(message=message):
                messages.append({"role": "system", "content": f"error: {message}"})
            case _:  # approvals, start markers, failures: bookkeeping in both formats
                pass
    return messages


@contextlib.contextmanager
def quiet_stderr() -> Iterator[None]:
    """llama.cpp logs from C even with verbose=False; hide that noise at the fd level."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cases", nargs="*", type=Path, default=[DEFAULT_CASES])
    parser.add_argument("--verbose", "-v", action="store_true", help="one line per thread")
    options = parser.parse_args(argv)

    model_path = model_server.default_model_path(Settings())
    if not model_path.exists():
        print(f"no model at {model_path}: run `calculator-agent model install`", file=sys.stderr)
        return 2
    # vocab_only loads just the tokenizer: no weights, no GPU, milliseconds.
    with quiet_stderr():
        llama = Llama(model_path=str(model_path), vocab_only=True, verbose=False)

    def count(text: str) -> int:
        return len(llama.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    ours_total = chat_total = threads = 0
    for path in options.cases:
        for case in load_cases(path):
            ours = count(render_thread(case.thread))
            chat = count(json.dumps(to_chat_messages(case.thread)))
            ours_total += ours
            chat_total += chat
            threads += 1
            if options.verbose:
                print(f"{case.name:40} ours {ours:5}  chat JSON {chat:5}  {ours / chat:.2f}")
    print(f"threads:           {threads}")
    print(f"ours (tokens):      {ours_total}  ({ours_total / threads:.1f} per thread)")
    print(f"chat JSON (tokens): {chat_total}  ({chat_total / threads:.1f} per thread)")
    print(f"ratio ours / chat JSON: {ours_total / chat_total:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
