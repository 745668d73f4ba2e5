"""baml_client/ is generated and committed: it must be exactly what baml_src/ generates,
and the generator version must match the pinned baml-py."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _files(directory: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(directory)): path.read_bytes()
        for path in sorted(directory.rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts
    }


def test_regenerating_baml_client_changes_nothing(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "baml_src", tmp_path / "baml_src")
    baml_cli = Path(sys.executable).with_name("baml-cli")
    result = subprocess.run(
        [str(baml_cli), "generate", "--from", str(tmp_path / "baml_src")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    generated = _files(tmp_path / "baml_client")
    committed = _files(ROOT / "baml_client")
    assert generated.keys() == committed.keys()
    stale = [name for name in generated if generated[name] != committed[name]]
    assert not stale, f"baml_client/ is stale, run `uv run baml-cli generate`: {stale}"


def test_generator_version_matches_the_pinned_baml_py() -> None:
    generators = (ROOT / "baml_src" / "generators.baml").read_text()
    match = re.search(r'version\s+"([^"]+)"', generators)
    assert match is not None
    generator_version = match.group(1)
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    pins = [d for d in pyproject["project"]["dependencies"] if d.startswith("baml-py")]
    assert pins == [f"baml-py=={generator_version}"]
    assert version("baml-py") == generator_version
