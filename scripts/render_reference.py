"""Regenerate the reference agent in this repository from template/.

template/ is the single source of truth. This repository's baml_src/, baml_client/, src/,
tests/ (except tests/template/, the template's own tests) and the other REFERENCE_PATHS are
the template rendered with the default answers; tests/template/test_template.py fails when
they drift. Edit template/, then run:

    uv run python scripts/render_reference.py
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import copier

ROOT = Path(__file__).resolve().parents[1]

# Rendered from template/ with the default answers. uv.lock is not: it is resolved per project.
REFERENCE_PATHS = [
    "baml_src", "baml_client", "src", "tests", "benchmarks", "pyproject.toml",
    ".ci/run", ".gitignore", "LICENSE", "licenses",
]  # fmt: skip
# What only the scaffold has inside those paths (the documented differences).
SCAFFOLD_ONLY = ["tests/template"]


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=template", "-c", "user.email=template@localhost", *args],
        cwd=cwd, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip


def snapshot_repo(dst: Path) -> Path:
    """This working tree's tracked and new files, uncommitted edits included, committed to a
    fresh git repo at dst: what `copier copy` sees in a clone of it."""
    listed = git(ROOT, "ls-files", "--cached", "--others", "--exclude-standard", "-z")
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file():
            target = dst / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    git(dst, "init", "-q", "-b", "main")
    git(dst, "add", "-A")
    git(dst, "commit", "-q", "-m", "template snapshot")
    return dst


def render_defaults(dst: Path) -> Path:
    with tempfile.TemporaryDirectory() as scratch:
        template = snapshot_repo(Path(scratch))
        copier.run_copy(str(template), dst, defaults=True, vcs_ref="HEAD", quiet=True)
    return dst


def main() -> int:
    with tempfile.TemporaryDirectory() as scratch:
        rendered = render_defaults(Path(scratch) / "reference")
        keep = {name: Path(scratch) / "keep" / name for name in SCAFFOLD_ONLY}
        for name, backup in keep.items():
            if (ROOT / name).exists():
                shutil.copytree(ROOT / name, backup)
        for name in REFERENCE_PATHS:
            target, source = ROOT / name, rendered / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
            if source.is_dir():
                shutil.copytree(source, target)
            elif source.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, target)
        for name, backup in keep.items():
            if backup.exists():
                shutil.copytree(backup, ROOT / name)
    print(f"re-rendered {', '.join(REFERENCE_PATHS)} from template/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
