"""The `test` blocks in baml_src/ (what the BAML playground runs) pass on the local model."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from calculator_agent.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.model
def test_baml_cli_test_passes_on_the_embedded_model(model_settings: Settings) -> None:
    if not model_settings.uses_local_client:
        pytest.skip("baml-cli test runs the client agent.baml names (Local), not AGENT_LLM_CLIENT")
    baml_cli = Path(sys.executable).with_name("baml-cli")
    result = subprocess.run(
        [str(baml_cli), "test", "--from", str(ROOT / "baml_src")],
        env={**os.environ, **model_settings.baml_env()},
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    output = result.stdout + result.stderr
    summary = re.search(r"Test run completed, (\d+) tests \((.*)\)", output)
    assert summary is not None, output[-3000:]
    assert result.returncode == 0, output[-3000:]
    assert "❌" not in summary.group(2)
    assert int(summary.group(1)) >= 5  # the key cases
