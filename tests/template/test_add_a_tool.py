"""The README's "Add a tool" walkthrough, applied to a freshly generated project, works."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from tests.template.conftest import ROOT, render, snapshot_repo
from tests.template.test_template import project_env, run_project_tests


def snippets() -> dict[str, str]:
    readme = (ROOT / "README.md").read_text()
    found = re.findall(r"<!-- add-a-tool: (\w+) -->\n```\w+\n(.*?)```", readme, flags=re.DOTALL)
    return dict(found)


def test_the_walkthrough_snippets_are_all_in_the_readme() -> None:
    assert set(snippets()) == {"class", "union", "function", "register", "test"}


def test_following_the_walkthrough_adds_a_working_tool(tmp_path: Path) -> None:
    steps = snippets()
    project = render(snapshot_repo(tmp_path / "template"), tmp_path / "project", {})

    agent_baml = project / "baml_src" / "agent.baml"
    text = agent_baml.read_text()
    union = re.compile(r"^type CalculatorTools = .*$", flags=re.MULTILINE)
    assert union.search(text), "the walkthrough's union line no longer exists in agent.baml"
    text = union.sub(steps["union"].strip(), text)
    agent_baml.write_text(text + "\n" + steps["class"])

    tools = project / "src" / "calculator_agent" / "tools.py"
    source = tools.read_text()
    assert "TOOLS: Toolbox = {\n" in source
    source = source.replace("TOOLS: Toolbox = {\n", "TOOLS: Toolbox = {\n" + steps["register"])
    tools.write_text(source.replace("\n\nTOOLS", "\n\n" + steps["function"] + "\n\nTOOLS", 1))
    (project / "tests" / "test_power.py").write_text(steps["test"])

    sync = subprocess.run(
        ["uv", "sync"], cwd=project, env=project_env(), capture_output=True, text=True, check=False
    )
    assert sync.returncode == 0, sync.stderr[-3000:]
    generate = subprocess.run(
        ["uv", "run", "baml-cli", "generate"], cwd=project, env=project_env(),
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert generate.returncode == 0, generate.stderr
    assert "PowerTool" in (project / "baml_client" / "types.py").read_text()
    result = run_project_tests(
        project, "tests/test_power.py", "tests/test_baml_client.py", "tests/test_agent.py"
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    assert "passed" in result.stdout
