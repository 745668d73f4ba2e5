"""Helpers for testing the Copier template from this working tree."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import copier

from scripts.render_reference import ROOT, git, snapshot_repo

__all__ = ["ROOT", "git", "render", "snapshot_repo"]


def render(template: Path, dst: Path, answers: dict[str, Any], ref: str = "HEAD") -> Path:
    copier.run_copy(
        str(template), dst, data=answers, defaults=True, vcs_ref=ref, quiet=True, unsafe=False
    )
    return dst
