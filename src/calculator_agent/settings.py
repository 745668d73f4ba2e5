"""Settings from the environment (or a .env file): one place, typed, with safe defaults."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlparse

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

LOCAL_CLIENT = "Local"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AGENT_", env_file=".env", extra="ignore")

    # Which BAML client DetermineNextStep uses: a client in baml_src/clients.baml
    # (Local, OpenAI, Anthropic) or BAML's "provider/model" shorthand.
    llm_client: str = LOCAL_CLIENT
    # The Local client talks to this OpenAI-compatible server: the embedded model by
    # default, or Ollama, vLLM, LM Studio... anywhere else.
    local_llm_base_url: str = Field(
        "http://127.0.0.1:8181/v1",
        validation_alias=AliasChoices("LOCAL_LLM_BASE_URL", "AGENT_LOCAL_LLM_BASE_URL"),
    )
    local_llm_model: str = Field(
        "qwen2.5-coder-1.5b-instruct",
        validation_alias=AliasChoices("LOCAL_LLM_MODEL", "AGENT_LOCAL_LLM_MODEL"),
    )
    openai_api_key: SecretStr | None = Field(None, validation_alias="OPENAI_API_KEY")
    anthropic_api_key: SecretStr | None = Field(None, validation_alias="ANTHROPIC_API_KEY")

    data_dir: Path = Path(".data")
    # Any GGUF file; empty means the packaged Qwen2.5-Coder-1.5B-Instruct.
    model_path: Path | None = None
    model_ctx: int = 4096
    model_threads: int = Field(default_factory=lambda: os.cpu_count() or 1)
    # Start the embedded model server when the Local client points at this machine and
    # nothing answers there.
    autostart_model: bool = True

    max_steps: int = Field(10, ge=1)
    max_consecutive_errors: int = Field(3, ge=1)

    # Where threads live: empty means the embedded SQLite file in data_dir;
    # "postgresql://user@host:5432/db" means PostgreSQL (shared by any number of servers).
    database_url: str = Field(
        "",
        validation_alias=AliasChoices("AGENT_DATABASE_URL", "DATABASE_URL"),
    )
    # A loop holds its thread's lease; a crashed process's leases expire after this.
    lease_ttl_s: float = Field(30.0, gt=0)

    @property
    def db_path(self) -> Path:
        return self.data_dir / "threads.sqlite3"

    @property
    def uses_local_client(self) -> bool:
        return self.llm_client == LOCAL_CLIENT

    @property
    def local_port(self) -> int:
        return urlparse(self.local_llm_base_url).port or 80

    def baml_env(self) -> dict[str, str]:
        """Variables the .baml client definitions read (env.X)."""
        env = {
            "LOCAL_LLM_BASE_URL": self.local_llm_base_url,
            "LOCAL_LLM_MODEL": self.local_llm_model,
        }
        if self.openai_api_key:
            env["OPENAI_API_KEY"] = self.openai_api_key.get_secret_value()
        if self.anthropic_api_key:
            env["ANTHROPIC_API_KEY"] = self.anthropic_api_key.get_secret_value()
        return env

    # --- the HTTP server (`calculator-agent serve`) ------------------------------------
    # When set, every mutating endpoint requires "Authorization: Bearer <token>".
    api_token: SecretStr | None = None
    # HMAC-SHA256 secret of the inbound webhook; without it the webhook refuses every request.
    webhook_secret: SecretStr | None = None
    # Signed requests older (or newer) than this are rejected, and replays inside it too.
    webhook_tolerance_s: int = Field(300, ge=1)
    # Pause notifications: POSTed here (empty: none), signed with notify_secret, falling
    # back to webhook_secret; retried notify_attempts times with exponential backoff.
    notify_url: str = ""
    notify_secret: SecretStr | None = None
    notify_attempts: int = Field(4, ge=1)
    notify_backoff_s: float = Field(0.5, ge=0)
    notify_timeout_s: float = Field(5.0, gt=0)
    # This server's address as receivers of notifications reach it (answer links);
    # empty means http://HOST:PORT from `serve`.
    public_url: str = ""
    # How often in-flight threads nobody holds are looked for (and picked up again).
    recovery_interval_s: float = Field(5.0, gt=0)
    # Loops one server process runs at once; more wait in a queue with their lease held.
    max_concurrent_loops: int = Field(8, ge=1)


@lru_cache
def get_settings() -> Settings:
    return Settings()
