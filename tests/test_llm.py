"""The BAML edge: parsing canned answers, the exact request, and error mapping.

No model is needed here: b.parse and b.request run locally.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from calculator_agent.agent import NextStepError, run_until_pause, step
from calculator_agent.llm import REDACTED, BamlNextStep, LLMConfigError, parse_answer
from calculator_agent.settings import Settings
from calculator_agent.thread import Error, Thread, ToolCall, UserInput

from tests.toolbox import TEST_TOOLS

SNAPSHOT = Path(__file__).parent / "snapshots" / "determine_next_step_request.json"


def local_settings(**overrides: object) -> Settings:
    values: dict[str, object] = {
        "llm_client": "Local",
        "local_llm_base_url": "http://127.0.0.1:1/v1",
        "local_llm_model": "snapshot-model",
        "openai_api_key": None,
        "anthropic_api_key": None,
    }
    values.update(overrides)
    return Settings.model_validate(values)


@pytest.mark.parametrize(
    ("raw", "intent", "args"),
    [
        (
            '{"intent": "done_for_now", "message": "It is 6."}',
            "done_for_now",
            {"message": "It is 6."},
        ),
        (
            '```json\n{"intent": "request_more_information", "message": "Which one?"}\n```',
            "request_more_information",
            {"message": "Which one?"},
        ),
        (
            'Sure! {"intent": "done_for_now", "message": "It is 6."}',
            "done_for_now",
            {"message": "It is 6."},
        ),
        (
            '{intent: "request_more_information", message: "Which number?"}',
            "request_more_information",
            {"message": "Which number?"},
        ),
    ],
)
def test_parse_canned_answers(raw: str, intent: str, args: dict[str, object]) -> None:
    decision = parse_answer(raw)
    assert decision.intent == intent
    assert decision.args == args


@pytest.mark.parametrize(
    "raw", ["I think you should do it", '{"intent": "done_for_now"}', '{"intent": "fly"}', ""]
)
def test_garbage_answers_raise_a_compact_error(raw: str) -> None:
    with pytest.raises(NextStepError, match="could not parse the model's answer") as caught:
        parse_answer(raw)
    assert "Traceback" not in str(caught.value)
    assert len(str(caught.value)) < 300


def test_garbage_from_the_model_becomes_an_error_event_in_the_thread() -> None:
    answers = iter(["no idea, sorry", '{"intent": "done_for_now", "message": "ok"}'])
    thread = run_until_pause(
        step(Thread(), UserInput(text="hi")), lambda _: parse_answer(next(answers)), TEST_TOOLS
    )
    errors = [e for e in thread.events if isinstance(e, Error)]
    assert len(errors) == 1
    assert errors[0].source == "llm"
    assert errors[0].message == "could not parse the model's answer: no idea, sorry"
    assert isinstance(thread.events[-1], ToolCall)
    assert thread.events[-1].intent == "done_for_now"


def snapshot_thread() -> Thread:
    return Thread(
        id="snapshot",
        events=(
            UserInput(text="can you multiply 3 and 4, then divide the result by 2?"),
            ToolCall(call_id="c1", intent="multiply", args={"a": 3, "b": 4}),
        ),
    )


def test_rendered_request_matches_the_snapshot() -> None:
    """The exact body the LLM gets. Regenerate deliberately with UPDATE_SNAPSHOTS=1."""
    request = BamlNextStep(local_settings()).request_body(snapshot_thread())
    # Sorted keys: BAML does not promise a stable option/header order.
    rendered = json.dumps(request, indent=2, ensure_ascii=False, sort_keys=True) + "\n"
    if os.environ.get("UPDATE_SNAPSHOTS") == "1":
        SNAPSHOT.write_text(rendered)
    assert SNAPSHOT.exists(), "no snapshot yet: run with UPDATE_SNAPSHOTS=1"
    assert rendered == SNAPSHOT.read_text()


def test_request_goes_to_the_configured_local_server_with_temperature_zero() -> None:
    request = BamlNextStep(local_settings()).request_body(snapshot_thread())
    assert request["url"] == "http://127.0.0.1:1/v1/chat/completions"
    assert request["body"]["model"] == "snapshot-model"
    assert request["body"]["temperature"] == 0
    user_message = request["body"]["messages"][-1]["content"]
    assert "<multiply>\na: 3\nb: 4\n</multiply>" in user_message


def test_hosted_client_secrets_are_redacted() -> None:
    settings = local_settings(llm_client="OpenAI", openai_api_key="sk-test-secret-123")
    request = BamlNextStep(settings).request_body(snapshot_thread())
    assert request["url"].startswith("https://api.openai.com/")
    assert request["headers"]["authorization"] == REDACTED
    assert "sk-test-secret-123" not in json.dumps(request)


def test_hosted_client_without_key_is_a_clear_configuration_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    with pytest.raises(LLMConfigError, match="needs ANTHROPIC_API_KEY"):
        BamlNextStep(local_settings(llm_client="Anthropic"))


def test_unreachable_server_becomes_a_short_error() -> None:
    next_step = BamlNextStep(local_settings())  # port 1: nothing listens there
    with pytest.raises(NextStepError, match=r"^LLM server unreachable http://127\.0\.0\.1:1/v1$"):
        next_step(snapshot_thread())
