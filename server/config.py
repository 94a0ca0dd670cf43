"""Settings from the environment and `.env` (CONTRACT §7)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import quote

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SQLITE_PATH = ROOT / "data" / "mobok.sqlite3"

ProviderName = Literal["openai", "gemini", "local"]
DATABASE_SCHEMES = ("sqlite", "mysql", "postgres", "postgresql")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    port: int = Field(default=3000, ge=1, le=65535)
    host: str = "0.0.0.0"

    database_url: str = ""
    db_host: str | None = None
    db_port: int = 3306
    db_user: str = "root"
    db_password: str = ""
    db_name: str = "mobok"
    # connecting, waiting for a pooled connection and each statement: then a temporary failure
    db_query_timeout_seconds: float = Field(default=5.0, gt=0)

    ai_provider: ProviderName | None = None
    ai_timeout_seconds: float = Field(default=30.0, gt=0)
    openai_api_key: str | None = None
    openai_model: str = "gpt-4o"
    openai_base_url: str | None = None
    gemini_api_key: str | None = None
    gemini_model: str = "gemini-2.0-flash"
    gemini_base_url: str | None = None  # a Gemini-API-compatible endpoint (tests use a fake)
    # generation settings of the counseling backend (unset: the model's own defaults)
    gemini_temperature: float | None = Field(default=None, ge=0, le=2)
    gemini_top_p: float | None = Field(default=None, ge=0, le=1)
    gemini_top_k: int | None = Field(default=None, ge=1)
    gemini_max_output_tokens: int | None = Field(default=None, ge=1)

    tts_voice: Literal["alloy", "echo", "fable", "onyx", "nova", "shimmer"] = "alloy"
    # speech: the language callers speak (a Whisper code; `auto` = detect), the OpenAI models,
    # and the offline Whisper model (`base` = the shipped one, a folder, or a model name)
    stt_language: str = Field(default="ko", pattern=r"^([a-z]{2,3}|auto)$")
    stt_model: str = "gpt-4o-mini-transcribe"
    tts_model: str = "gpt-4o-mini-tts"
    whisper_model: str = "base"
    # words the offline recognizer is nudged towards; unset: the welfare line's own words
    # when callers speak Korean, none otherwise; empty: none
    whisper_hotwords: str | None = None
    whisper_cache_dir: Path = ROOT / "data" / "models"
    stt_preload: bool = True  # load the offline model at start-up, not at the first utterance
    stun_server_url: str = "stun:stun.l.google.com:19302"
    # TURN (docs/calls.md): comma-separated turn:/turns: URLs, long-term credentials or the
    # secret of coturn's use-auth-secret (credentials signed per request, valid the TTL)
    turn_server_url: str = ""
    turn_username: str | None = None
    turn_credential: str | None = None
    turn_secret: str | None = None
    turn_ttl_seconds: int = Field(default=12 * 3600, gt=0)
    rtc_ice_transport_policy: Literal["all", "relay"] = "all"  # relay: TURN only, both ends
    rtc_ice_loopback: bool = False  # let the AI peer offer 127.0.0.1 candidates (tests, local)
    vad_silence_ms: int = Field(default=200, ge=60, le=5000)  # pause -> end-of-turn check
    vad_min_speech_ms: int = Field(default=200, ge=0)  # shorter bursts are not utterances
    vad_threshold: float = Field(default=0.5, gt=0, lt=1)  # Silero speech probability
    turn_max_silence_ms: int = Field(default=1500, ge=100, le=10000)  # ends a turn anyway
    turn_model: Literal["smart-turn", "none"] = "smart-turn"  # the end-of-turn model
    turn_transcript: bool = True  # the transcript's wording judges the end of turn too
    turn_decision_deadline_ms: int = Field(default=300, ge=0, le=10000)  # then the pause ends it
    max_utterance_seconds: float = Field(default=30, gt=0, le=600)  # longer is cut there
    barge_in: bool = True  # the caller speaking over the AI stops it
    echo_guard: bool = True  # the AI's own voice coming back is not the caller (voice/echo)
    echo_return_loss_db: float = Field(default=6.0, ge=0, le=40)  # the echo's assumed loss
    voice_greeting_delay_ms: int = Field(default=2000, ge=0)  # media connected -> greeting
    # a call still RINGING or CONNECTING this long after its last change FAILS
    call_setup_timeout_seconds: float = Field(default=120.0, gt=0)
    # a call in progress no instance has reported alive this long ENDS (its instance died)
    call_stale_seconds: float = Field(default=300.0, gt=0)

    cors_origin: str = "*"
    redis_url: str | None = None
    auth_secret: str | None = None
    jwt_secret_key: str | None = None  # the counseling backend's name of AUTH_SECRET
    admin_token: str | None = None  # a static bearer token for the admin routes and /admin
    admin_sample_seconds: float = Field(default=15, gt=0)  # the console's chart resolution
    # privacy: messages, calls and exchanges older than this are deleted (unset: kept forever)
    retention_days: float | None = Field(default=None, gt=0)
    retention_interval_minutes: float = Field(default=60, gt=0)
    retention_batch_rows: int = Field(default=500, ge=1, le=10_000)
    # spend limits (counted in Redis with REDIS_URL, else per process)
    max_calls_per_hour: int = Field(default=30, ge=1)  # calls placed per user (or IP)
    max_process_per_minute: int = Field(default=20, ge=1)  # conversation/process per user
    max_voice_turns_per_minute: int = Field(default=20, ge=1)  # answered utterances per call
    # `websocket` alone needs no sticky sessions behind a load balancer; both is the default
    socketio_transports: str = "polling,websocket"
    max_payload_bytes: int = Field(default=1_000_000, ge=1024)  # one event, frame or body

    session_timeout_minutes: float = Field(default=30, gt=0)
    session_reap_interval_minutes: float = Field(default=5, gt=0)
    max_message_length: int = Field(default=2000, gt=0)
    max_ai_requests_per_minute: int = Field(default=10, gt=0)
    history_context_messages: int = Field(default=20, gt=0)
    # with Redis: an answer in progress on an instance that died is taken over this long after
    turn_lease_seconds: float = Field(default=10.0, gt=0)

    welfare_catalog_path: Path | None = None
    # POSTed {protocol, sessionId, category, level, timestamp} for every message at risk
    safety_webhook_url: str | None = None
    agents_path: Path | None = None  # §3 agents per project; None = the shipped file
    http_keepalive_seconds: float = Field(default=15.0, gt=0)  # idle, or a request head unsent
    ws_heartbeat_seconds: float = Field(default=30.0, gt=0)  # protocol pings on plain websockets
    # a plain websocket client with this much sent to it but not yet read is cut off
    ws_max_unsent_bytes: int = Field(default=16 * 1024 * 1024, ge=64 * 1024)
    delta_flush_ms: float = Field(default=30.0, ge=0)  # token deltas coalesced this long
    log_level: str = "INFO"

    @model_validator(mode="after")
    def _derive(self) -> Settings:
        if self.jwt_secret_key:
            if self.auth_secret and self.auth_secret != self.jwt_secret_key:
                raise ValueError(
                    "AUTH_SECRET and JWT_SECRET_KEY are both set and differ: set one of them"
                )
            self.auth_secret = self.jwt_secret_key
        if not self.database_url:
            if self.db_host:
                password = quote(self.db_password, safe="")
                self.database_url = (
                    f"mysql://{quote(self.db_user, safe='')}:{password}"
                    f"@{self.db_host}:{self.db_port}/{self.db_name}"
                )
            else:
                self.database_url = f"sqlite://{DEFAULT_SQLITE_PATH}"
        scheme = self.database_url.split("://", 1)[0] if "://" in self.database_url else ""
        if scheme not in DATABASE_SCHEMES:
            raise ValueError(
                "DATABASE_URL must start with sqlite://, mysql://, postgres:// or postgresql://"
            )
        if self.ai_provider is None:
            if self.openai_api_key:
                self.ai_provider = "openai"
            elif self.gemini_api_key:
                self.ai_provider = "gemini"
            else:
                self.ai_provider = "local"
        return self

    @property
    def provider(self) -> ProviderName:
        assert self.ai_provider is not None
        return self.ai_provider

    @property
    def cors_origins(self) -> list[str] | str:
        """`*` or the comma-separated allowlist."""
        origins = [o.strip() for o in self.cors_origin.split(",") if o.strip()]
        return "*" if not origins or "*" in origins else origins

    @property
    def transports(self) -> list[str]:
        names = [t.strip() for t in self.socketio_transports.split(",") if t.strip()]
        unknown = set(names) - {"polling", "websocket"}
        if unknown or not names:
            raise ValueError(f"SOCKETIO_TRANSPORTS: unknown {sorted(unknown)}")
        return names

    @property
    def session_timeout_seconds(self) -> float:
        return self.session_timeout_minutes * 60

    @property
    def speech_language(self) -> str | None:
        """`STT_LANGUAGE`, or None to let the recognizer detect it."""
        return None if self.stt_language == "auto" else self.stt_language

    @property
    def reap_interval_seconds(self) -> float:
        return self.session_reap_interval_minutes * 60

    @property
    def call_expiry_interval_seconds(self) -> float:
        """How often calls stuck in set-up are looked for: a quarter of the timeout, at most
        every 30 s, so a call is expired at most a quarter late."""
        return min(30.0, self.call_setup_timeout_seconds / 4, self.call_stale_seconds / 4)

    @property
    def call_heartbeat_seconds(self) -> float:
        """How often an instance reports its calls in progress alive: five times within
        `CALL_STALE_SECONDS`, so a slow pass or two never ends a live call."""
        return self.call_stale_seconds / 5
