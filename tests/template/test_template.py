"""The Copier template: answer sets render the right files and each generated project's own
test suite passes; bad answers fail clearly; `copier update` keeps user edits."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from scripts.render_reference import REFERENCE_PATHS, SCAFFOLD_ONLY

from tests.template.conftest import ROOT, git, render, snapshot_repo


@pytest.fixture(scope="module")
def template_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return snapshot_repo(tmp_path_factory.mktemp("template-repo"))


@functools.cache
def _wheelhouse() -> str | None:
    """llama-cpp-python builds from source (~5 min on 2 cores), and uv keys that build per
    project, so each generated project would build it again. Offer the wheel uv already
    built for this repository instead (same pinned version); without one, projects build."""
    cache = subprocess.run(["uv", "cache", "dir"], capture_output=True, text=True, check=False)
    wheels = sorted(Path(cache.stdout.strip()).glob("sdists-*/pypi/llama-cpp-python/*/*/*.whl"))
    if cache.returncode != 0 or not wheels:
        return None
    house = Path(tempfile.mkdtemp(prefix="wheelhouse-"))
    shutil.copy2(wheels[-1], house)
    return str(house)


def project_env() -> dict[str, str]:
    """The environment a user's shell would have: not this repository's venv or settings."""
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV" and not k.startswith("AGENT_")}
    if (house := _wheelhouse()) is not None:
        env["UV_FIND_LINKS"] = house
    return env


def run_project_tests(project: Path, *pytest_args: str) -> subprocess.CompletedProcess[str]:
    """Set up the generated project with its own tools and run its own test suite."""
    env = project_env()
    sync = subprocess.run(
        ["uv", "sync", "--locked"] if (project / "uv.lock").exists() else ["uv", "sync"],
        cwd=project, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert sync.returncode == 0, sync.stderr[-3000:]
    return subprocess.run(
        ["uv", "run", "pytest", "-q", "-p", "no:cacheprovider", *pytest_args],
        cwd=project, env=env, capture_output=True, text=True, check=False, timeout=1800,
    )  # fmt: skip


ANSWER_SETS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "empty-no-server": {
        "project_name": "ticket-agent",
        "package_name": "ticket_agent",
        "starter": "empty",
        "include_server": False,
    },
    "hosted-postgres": {
        "project_name": "hosted-agent",
        "llm": "openai",
        "store": "postgres",
        "database_url": "postgresql://postgres@127.0.0.1:5432/postgres",
    },
}


@pytest.fixture(scope="module", params=list(ANSWER_SETS), ids=list(ANSWER_SETS))
def project(
    request: pytest.FixtureRequest, template_repo: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, Path]:
    name: str = request.param
    return name, render(template_repo, tmp_path_factory.mktemp(name), ANSWER_SETS[name])


def test_rendered_files_match_the_answers(project: tuple[str, Path]) -> None:
    name, path = project
    answers = yaml.safe_load((path / ".copier-answers.yml").read_text())
    package = answers["package_name"]
    assert answers["starter"] == ANSWER_SETS[name].get("starter", "calculator")
    for expected in [
        "README.md", "pyproject.toml", ".ci/run", "baml_src/agent.baml", "baml_src/clients.baml",
        "baml_src/generators.baml", "baml_client/__init__.py", f"src/{package}/agent.py",
        f"src/{package}/thread.py", f"src/{package}/cli.py", "tests/conftest.py",
    ]:  # fmt: skip
        assert (path / expected).is_file(), expected
    has_server = (path / "src" / package / "server").is_dir()
    assert has_server == ANSWER_SETS[name].get("include_server", True)
    agent_baml = (path / "baml_src" / "agent.baml").read_text()
    # BAML's own Jinja reaches the project untouched.
    assert "{{ ctx.output_format }}" in agent_baml
    assert ("class DivideTool" in agent_baml) == (answers["starter"] == "calculator")
    pyproject = (path / "pyproject.toml").read_text()
    assert f'name = "{answers["project_name"]}"' in pyproject
    settings = (path / "src" / package / "settings.py").read_text()
    if name == "hosted-postgres":
        assert 'llm_client: str = "OpenAI"' in settings
        assert "postgresql://postgres@127.0.0.1:5432/postgres" in settings
    if package != "calculator_agent":
        sources = [*(path / "src").rglob("*.py"), *(path / "tests").rglob("*.py")]
        assert not [p for p in sources if "calculator_agent" in p.read_text()]


@pytest.mark.model  # the default project's own suite runs the embedded model end to end
def test_generated_project_passes_its_own_tests(project: tuple[str, Path]) -> None:
    _, path = project
    result = run_project_tests(path)
    tail = (result.stdout + result.stderr)[-4000:]
    assert result.returncode == 0, tail
    assert " passed" in tail


@pytest.mark.parametrize(
    ("answers", "message"),
    [
        ({"package_name": "My-Agent"}, "must be a valid lowercase Python identifier"),
        ({"package_name": "tests"}, "would shadow another module"),
        ({"project_name": "My Agent"}, "project_name must be lowercase"),
        ({"author_email": "nobody"}, "author_email must look like"),
        ({"llm": "openai_compatible", "compatible_base_url": "localhost"}, "http(s) URL"),
        ({"llm": "gemini"}, "gemini"),
    ],
)
def test_invalid_answers_fail_with_a_clear_message(
    template_repo: Path, tmp_path: Path, answers: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=r"Validation error|Invalid choice|not a valid") as caught:
        render(template_repo, tmp_path / "p", answers)
    assert message in str(caught.value)
    assert not (tmp_path / "p" / "pyproject.toml").exists()


def test_copier_update_keeps_user_edits_and_brings_template_changes(tmp_path: Path) -> None:
    import copier

    template = snapshot_repo(tmp_path / "template")
    git(template, "tag", "v1.0.0")
    project = render(template, tmp_path / "project", {}, ref="v1.0.0")
    git(project, "init", "-q", "-b", "main")
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", "generated")

    # The user's edit: a tool of their own in tools.py.
    answers = yaml.safe_load((project / ".copier-answers.yml").read_text())
    tools = project / "src" / answers["package_name"] / "tools.py"
    tools.write_text(tools.read_text() + "\n\ndef square(a: Number) -> Number:\n    return a * a\n")
    git(project, "commit", "-q", "-am", "my tool")

    # The template's change, released as a new version.
    gitignore = template / "template" / ".gitignore"
    gitignore.write_text(gitignore.read_text() + "*.sqlite3-journal\n")
    git(template, "commit", "-q", "-am", "ignore sqlite journals")
    git(template, "tag", "v1.1.0")

    copier.run_update(project, defaults=True, overwrite=True, quiet=True, unsafe=False)

    assert "def square(a: Number) -> Number:" in tools.read_text()
    assert "*.sqlite3-journal" in (project / ".gitignore").read_text()
    assert "_commit: v1.1.0" in (project / ".copier-answers.yml").read_text()


def _tree(base: Path, paths: list[str]) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    for top in paths:
        start = base / top
        candidates = [start] if start.is_file() else sorted(start.rglob("*"))
        for path in candidates:
            relative = path.relative_to(base).as_posix()
            if (
                path.is_file()
                and "__pycache__" not in path.parts
                and not any(relative.startswith(prefix + "/") for prefix in SCAFFOLD_ONLY)
            ):
                files[relative] = path.read_bytes()
    return files


def test_the_reference_agent_is_the_template_rendered_with_defaults(
    template_repo: Path, tmp_path: Path
) -> None:
    rendered = render(template_repo, tmp_path / "reference", {})
    expected, actual = _tree(rendered, REFERENCE_PATHS), _tree(ROOT, REFERENCE_PATHS)
    missing = sorted(expected.keys() - actual.keys())
    extra = sorted(actual.keys() - expected.keys())
    changed = sorted(k for k in expected.keys() & actual.keys() if expected[k] != actual[k])
    hint = (
        "the reference agent drifted from template/: edit template/, then run "
        "`uv run python scripts/render_reference.py`"
    )
    assert not missing, f"{hint}\nmissing here: {missing}"
    assert not extra, f"{hint}\nonly here: {extra}"
    assert not changed, f"{hint}\ndiffer: {changed}"
