"""One ``Settings`` for the whole server: every field is an env var ``CHATTTS_SERVER_<NAME>``
and a ``serve`` flag ``--<name-with-dashes>``; flags win over env vars, env vars over defaults.
The flags and README's table are generated from the fields (:func:`add_flags`,
:func:`markdown_table`), so they cannot disagree."""

from __future__ import annotations

import argparse
from pathlib import Path
from types import UnionType
from typing import Any, Literal, Union, get_args, get_origin

import platformdirs
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from .engine import EngineConfig
from .engine.pipeline import EngineKind


def default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("chattts-server"))


class Settings(BaseSettings):
    """Server and engine settings. Each field is declared once, here: its env var, its
    ``serve`` flag (:func:`add_flags`) and its row in README's table (:func:`markdown_table`)
    are made from the declaration."""

    model_config = SettingsConfigDict(env_prefix="CHATTTS_SERVER_", extra="ignore")

    # model
    engine: EngineKind = Field(
        "torch",
        description="torch: ChatTTS on PyTorch (model_dir); onnx: an export-onnx folder on "
        "ONNX Runtime (onnx_dir), no torch needed",
    )
    onnx_dir: Path | None = Field(
        None, description="folder made by `chattts-server export-onnx` (engine onnx)"
    )
    model_dir: Path | None = Field(
        None, description="folder holding ChatTTS's asset/ layout (default: hub download)"
    )
    allow_download: bool = Field(True, description="try ChatTTS's hub download without model_dir")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="where the model runs")
    warmup: bool = Field(True, description="run a short synthesis at load")
    gpt_dtype: Literal["float32", "bfloat16", "int8"] = Field(
        "float32", description="GPT precision: float32 exact; int8 ~3× faster on CPU"
    )
    # network
    host: str = Field("0.0.0.0", description="address to listen on")
    port: int = Field(9700, ge=1, le=65535, description="port to listen on")
    data_dir: Path = Field(
        default_factory=default_data_dir,
        description="saved voices and generated test models (default: the user data dir, "
        "~/.local/share/chattts-server)",
    )
    database_url: str | None = Field(
        None,
        description="saved voices in PostgreSQL, shared by every server pointed at it: "
        "postgresql://user:password@host:5432/dbname (needs the postgres extra; a flag shows in "
        "ps: prefer the env var); default: SQLite in data_dir",
    )
    # limits
    max_text_chars: int = Field(4000, ge=1, description="longest text of a request")
    max_segment_chars: int = Field(
        120, ge=8, description="longest piece of text synthesized in one GPT pass"
    )
    max_new_tokens: int = Field(2048, ge=1, description="GPT steps per segment (21.3 ms each)")
    max_ref_audio_bytes: int = Field(10 * 1024 * 1024, ge=1, description="largest reference clip")
    max_ref_audio_seconds: float = Field(30.0, gt=0, description="longest reference clip")
    max_batch: int = Field(
        4, ge=1, le=64, description="requests synthesized at once, sharing each GPT step"
    )
    pack_weights: bool = Field(True, description="CPU: oneDNN pre-packed GPT weights")
    max_queue: int = Field(
        8, ge=0, description="requests waiting behind the running ones (more: 503)"
    )
    max_body_bytes: int = Field(16 * 1024 * 1024, ge=1024, description="largest request body")
    send_timeout_s: float = Field(30.0, gt=0, description="a client not reading this long is cut")
    keepalive_s: float = Field(15.0, gt=0, description="SSE keep-alive comment interval")
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="JSON log lines from this level up"
    )
    # trust
    api_keys: list[str] = Field(
        default_factory=list,
        description="Bearer keys; empty: no auth (a flag shows in ps: prefer the env var or "
        "api_keys_file)",
    )
    api_keys_file: Path | None = Field(None, description="one key per line, # comments")
    metrics_require_key: bool = Field(False, description="/metrics behind the API key too")
    rate_limit_per_minute: int = Field(0, ge=0, description="requests per key (0: off)")
    max_streams_per_key: int = Field(0, ge=0, description="concurrent streams per key (0: off)")
    request_timeout_s: float = Field(600.0, gt=0, description="default and longest deadline")
    graceful_shutdown_s: int = Field(
        30,
        ge=1,
        description="on SIGTERM/SIGINT: requests in flight get this long to finish, then are "
        "cancelled; the process then exits 0",
    )
    stream_token_ttl_s: float = Field(
        60.0, gt=0, le=3600, description="life of a stream token (GET /v1/tts/stream ?token=)"
    )
    stream_token_secret: str | None = Field(
        None,
        description="HMAC secret for stream tokens, shared by replicas (default: random per "
        "process)",
    )
    max_url_bytes: int = Field(
        8192, ge=1024, description="longest GET /v1/tts/stream URL (longer: 414, use POST)"
    )
    cors_origins: list[str] = Field(default_factory=list, description="CORS off when empty")
    tls_cert: Path | None = Field(None, description="server certificate (PEM): serve HTTPS")
    tls_key: Path | None = Field(None, description="its private key")
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
            engine=self.engine,
            onnx_dir=str(self.onnx_dir) if self.onnx_dir is not None else None,
        )


# --- flags and docs, made from the declarations above -----------------------------------------


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _default(name: str) -> str:
    info = Settings.model_fields[name]
    if info.default_factory is not None:
        value = info.default_factory()  # type: ignore[call-arg]
        return "none" if value == [] else ("user data dir" if name == "data_dir" else str(value))
    value = info.default
    if isinstance(value, bool):
        return str(value).lower()
    return "none" if value is None else str(value)


def _kind(name: str) -> tuple[Any, tuple[Any, ...], bool, bool]:
    """(type, choices, is_bool, is_list) of a field, its None dropped."""
    annotation = Settings.model_fields[name].annotation
    args = [a for a in get_args(annotation) if a is not type(None)] or [annotation]
    inner = args[0] if get_origin(annotation) in (Union, UnionType) else annotation
    if get_origin(inner) is Literal:
        return None, get_args(inner), False, False
    if get_origin(inner) is list:
        return str, (), False, True
    return inner, (), inner is bool, False


def add_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per :class:`Settings` field, ``--name-with-dashes`` (defaults stay unset, so
    env vars and then the declared defaults apply)."""
    for name, info in Settings.model_fields.items():
        typ, choices, is_bool, is_list = _kind(name)
        help_ = f"{info.description} (env CHATTTS_SERVER_{name.upper()}; default {_default(name)})"
        if is_bool:
            parser.add_argument(
                _flag(name), action=argparse.BooleanOptionalAction, default=None, help=help_
            )
        elif is_list:
            parser.add_argument(_flag(name), nargs="*", default=None, help=help_)
        elif choices:
            parser.add_argument(_flag(name), choices=choices, default=None, help=help_)
        else:
            parser.add_argument(_flag(name), type=typ, default=None, help=help_)


def markdown_table() -> str:
    """README's settings table (a test keeps README equal to it)."""
    rows = ["| setting (env `CHATTTS_SERVER_…`) | flag | default | what |", "|---|---|---|---|"]
    for name, info in Settings.model_fields.items():
        _, choices, is_bool, _ = _kind(name)
        flag = f"`{_flag(name)}`" + (f"/`--no-{_flag(name)[2:]}`" if is_bool else "")
        if choices:
            flag += " " + "\\|".join(str(c) for c in choices)
        rows.append(f"| `{name.upper()}` | {flag} | {_default(name)} | {info.description} |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":  # python -m chattts_server.settings: print README's table
    print(markdown_table(), end="")
