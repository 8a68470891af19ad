"""One ``Settings`` for the whole server: every field is an env var ``CHATTTS_SERVER_<NAME>``
and a ``serve`` flag ``--<name-with-dashes>``; flags win over env vars, env vars over defaults."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import platformdirs
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from .engine import EngineConfig


def default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("chattts-server"))


class Settings(BaseSettings):
    """Server and engine settings."""

    model_config = SettingsConfigDict(env_prefix="CHATTTS_SERVER_", extra="ignore")

    # model
    model_dir: Path | None = Field(None, description="folder holding ChatTTS's asset/ layout")
    allow_download: bool = Field(True, description="try ChatTTS's hub download without --model-dir")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    warmup: bool = Field(True, description="run a short synthesis at load")
    gpt_dtype: Literal["float32", "bfloat16", "int8"] = Field(
        "float32", description="GPT precision: float32 exact; int8 ~3× faster on CPU"
    )
    # network
    host: str = "0.0.0.0"
    port: int = Field(9700, ge=1, le=65535)
    data_dir: Path = Field(default_factory=default_data_dir)
    # limits
    max_text_chars: int = Field(4000, ge=1)
    max_segment_chars: int = Field(120, ge=8)
    max_new_tokens: int = Field(2048, ge=1, description="GPT steps per segment (21.3 ms each)")
    max_ref_audio_bytes: int = Field(10 * 1024 * 1024, ge=1)
    max_ref_audio_seconds: float = Field(30.0, gt=0)
    max_batch: int = Field(
        4, ge=1, le=64, description="requests synthesized at once, sharing each GPT step"
    )
    pack_weights: bool = Field(True, description="CPU: oneDNN pre-packed GPT weights")
    max_queue: int = Field(8, ge=0, description="requests waiting behind the running ones")
    max_body_bytes: int = Field(16 * 1024 * 1024, ge=1024)
    send_timeout_s: float = Field(30.0, gt=0, description="a client not reading this long is cut")
    keepalive_s: float = Field(15.0, gt=0, description="SSE keep-alive comment interval")
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    # trust
    api_keys: list[str] = Field(default_factory=list, description="Bearer keys; empty: no auth")
    api_keys_file: Path | None = Field(None, description="one key per line, # comments")
    metrics_require_key: bool = Field(False, description="/metrics behind the API key too")
    rate_limit_per_minute: int = Field(0, ge=0, description="requests per key (0: off)")
    max_streams_per_key: int = Field(0, ge=0, description="concurrent streams per key (0: off)")
    request_timeout_s: float = Field(600.0, gt=0, description="default and longest deadline")
    stream_token_ttl_s: float = Field(
        60.0, gt=0, le=3600, description="life of a stream token (GET /v1/tts/stream ?token=)"
    )
    stream_token_secret: str | None = Field(
        None, description="HMAC secret for stream tokens (share it between replicas); "
        "default: random per process",
    )  # fmt: skip
    max_url_bytes: int = Field(
        8192, ge=1024, description="longest GET /v1/tts/stream URL (longer: 414, use POST)"
    )
    cors_origins: list[str] = Field(default_factory=list, description="CORS off when empty")
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_client_ca: Path | None = Field(None, description="require client certificates (mTLS)")

    def load_api_keys(self) -> list[str]:
        """Keys from ``api_keys`` and ``api_keys_file`` (blank lines and # comments skipped)."""
        keys = [k.strip() for k in self.api_keys if k.strip()]
        if self.api_keys_file is not None:
            for line in self.api_keys_file.read_text(encoding="utf-8").splitlines():
                line = line.split("#", 1)[0].strip()
                if line:
                    keys.append(line)
        return keys

    def engine_config(self) -> EngineConfig:
        return EngineConfig(
            model_dir=str(self.model_dir) if self.model_dir is not None else None,
            allow_download=self.allow_download,
            device=self.device,
            max_text_chars=self.max_text_chars,
            max_segment_chars=self.max_segment_chars,
            max_new_tokens=self.max_new_tokens,
            max_ref_audio_bytes=self.max_ref_audio_bytes,
            max_ref_audio_seconds=self.max_ref_audio_seconds,
            warmup=self.warmup,
            gpt_dtype=self.gpt_dtype,
            max_batch=self.max_batch,
            pack_weights=self.pack_weights,
        )
