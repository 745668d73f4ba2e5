"""The edge to the LLM: BAML's DetermineNextStep, configured from settings.

Everything BAML can throw is mapped to a short NextStepError, which the loop turns
into an `error` event in the thread (factor 9) instead of a stack dump.
"""

from __future__ import annotations

import os
import re
import time
from typing import Any

from baml_py import Collector
from baml_py.errors import BamlClientError, BamlClientHttpError, BamlError, BamlValidationError

from baml_client import b
from baml_client.sync_client import BamlSyncClient

from .agent import Decision, NextStepError
from .context import render_thread
from .settings import Settings
from .thread import StepTelemetry, Thread

MAX_ERROR_CHARS = 200
REDACTED = "[redacted]"
_SECRET_HEADERS = {"authorization", "x-api-key", "api-key", "openai-api-key"}


class LLMConfigError(Exception):
    """The configured client cannot work (missing API key...): fix settings, not the thread."""


def _compact(text: str, limit: int = MAX_ERROR_CHARS) -> str:
    flat = re.sub(r"\s+", " ", text).strip()
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def to_decision(result: Any, telemetry: StepTelemetry | None = None) -> Decision:
    """A BAML intent object -> Decision (intent name + the other fields)."""
    return Decision(
        intent=result.intent, args=result.model_dump(exclude={"intent"}), telemetry=telemetry
    )


def parse_answer(raw: str) -> Decision:
    """Parse a raw model answer the way a live call would (b.parse), errors included."""
    try:
        return to_decision(b.parse.DetermineNextStep(raw))
    except BamlError as exc:
        raise NextStepError(f"could not parse the model's answer: {_compact(raw)}") from exc


class BamlNextStep:
    """The real NextStep: one DetermineNextStep call per loop iteration."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        check_configured(settings)
        self._client: BamlSyncClient = b.with_options(
            client=settings.llm_client, env={**os.environ, **settings.baml_env()}
        )

    def __call__(self, thread: Thread) -> Decision:
        collector = Collector(name="determine-next-step")
        started = time.perf_counter()
        try:
            result = self._client.DetermineNextStep(
                render_thread(thread), baml_options={"collector": collector}
            )
        except BamlValidationError as exc:
            raw = _compact(exc.raw_output)
            raise NextStepError(f"could not parse the model's answer: {raw}") from None
        except BamlClientHttpError as exc:
            raise NextStepError(self._http_error(exc)) from None
        except (BamlClientError, BamlError) as exc:
            raise NextStepError(f"LLM call failed: {_compact(str(exc))}") from None
        usage = collector.last.usage if collector.last else None
        telemetry = StepTelemetry(
            latency_s=round(time.perf_counter() - started, 3),
            input_tokens=usage.input_tokens if usage else None,
            output_tokens=usage.output_tokens if usage else None,
        )
        return to_decision(result, telemetry)

    def _http_error(self, exc: BamlClientHttpError) -> str:
        if "connect" in exc.message.lower():
            where = self._settings.local_llm_base_url if self._settings.uses_local_client else ""
            return f"LLM server unreachable {where}".strip()
        return f"LLM server answered {exc.status_code}: {_compact(exc.message)}"

    def request_body(self, thread: Thread) -> dict[str, Any]:
        """The exact HTTP request the LLM would get for this thread, secrets redacted."""
        request = self._client.request.DetermineNextStep(render_thread(thread))
        headers = {
            key: REDACTED if key.lower() in _SECRET_HEADERS else value
            for key, value in sorted(request.headers.items())
        }
        return {
            "method": request.method,
            "url": _redact_url(request.url),
            "headers": headers,
            "body": request.body.json(),
        }


def _redact_url(url: str) -> str:
    # Some providers (Google) put the key in the query string.
    return re.sub(r"(key=)[^&]+", rf"\1{REDACTED}", url)


def check_configured(settings: Settings) -> None:
    client = settings.llm_client
    has_openai_key = settings.openai_api_key or os.environ.get("OPENAI_API_KEY")
    has_anthropic_key = settings.anthropic_api_key or os.environ.get("ANTHROPIC_API_KEY")
    if (client == "OpenAI" or client.startswith("openai/")) and not has_openai_key:
        raise LLMConfigError(f"AGENT_LLM_CLIENT={client} needs OPENAI_API_KEY")
    if (client == "Anthropic" or client.startswith("anthropic/")) and not has_anthropic_key:
        raise LLMConfigError(f"AGENT_LLM_CLIENT={client} needs ANTHROPIC_API_KEY")
