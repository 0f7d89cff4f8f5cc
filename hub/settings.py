"""HubSettings: every knob of the hub, from the config file, HUB_* environment variables and flags (hub/config.py)."""

from __future__ import annotations

import contextlib
import os
import re
import secrets
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

LOG_LEVELS = ("debug", "info", "warning", "error", "critical", "trace")
URL_SCHEMES = {
    "redis_url": ("redis", "rediss", "unix", "redis+cluster", "rediss+cluster"),
    "broker_url": ("memory", "redis", "rediss", "unix", "redis+cluster", "rediss+cluster"),
    "store_url": ("sqlite", "redis", "rediss", "unix", "redis+cluster", "rediss+cluster"),
}


_ORIGIN = re.compile(r"[a-zA-Z][a-zA-Z0-9+.\-]*://[^/\s?#]+/?")  # what a browser sends in Origin


def url_problem(url: str, schemes: tuple[str, ...]) -> str | None:
    """Why a backend URL cannot be used (None: it looks usable): its scheme, its port, its host."""
    parts = urlsplit(url)
    if parts.scheme not in schemes or "://" not in url:
        return f"should be a URL starting with {', '.join(f'{scheme}://' for scheme in schemes)}"
    try:
        parts.port  # noqa: B018 -- parsing it is the check
    except ValueError:
        return "has a port that is not a number from 0 to 65535"
    if parts.scheme.startswith(("redis", "rediss")) and not parts.hostname:
        return "names no host (redis://host:port/db)"
    if parts.scheme == "unix" and not parts.path:
        return "names no socket path (unix:///path/to/redis.sock)"
    return None


class HubSettings(BaseSettings):
    """All timers are settings so tests run heartbeats and TTLs in milliseconds."""

    model_config = SettingsConfigDict(env_prefix="HUB_", env_nested_delimiter="__", extra="ignore")

    # serving
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    log_level: str = "info"  # debug, info, warning, error, critical (trace: uvicorn's, below debug)
    log_format: Literal["text", "json"] = "text"  # json: one JSON object per line (docs/operations.md, "Logging")
    plugins: Annotated[list[str] | None, NoDecode] = None  # None: every installed plugin
    data_dir: Path = Path(".hub")
    redis_url: str | None = None  # moves both broker and store to this Redis unless they are set on their own
    broker_url: str | None = None  # None: the Redis URL, else memory://
    store_url: str | None = None  # None: the Redis URL, else sqlite:///<data_dir>/hub.sqlite3
    redis_prefix: str = "hub"  # key prefix, so several hubs can share one Redis
    loop: Literal["auto", "asyncio", "uvloop"] = "auto"  # auto: uvloop when installed (a dependency), else asyncio

    # auth
    secret: str | None = None  # None: a random secret kept in <data_dir>/secret
    anonymous: bool = True  # connections without a token get a generated guest identity
    token_leeway: float = 0.0
    auth_timeout: float = Field(default=10.0, gt=0)  # seconds to authenticate when anonymous is off
    guest_token_ttl: float = Field(default=86400.0, gt=0)  # lifetime of a guest's resume token (hello.resume)
    allowed_origins: Annotated[list[str], NoDecode] = []  # besides the hub's own origin; "*" allows every site
    api_keys: Annotated[list[str], NoDecode] = []  # keys for server-to-server HTTP APIs (e.g. publishing)
    # tokens from an identity provider (docs/operations.md, "Tokens and identity providers")
    jwt_algorithms: Annotated[list[str], NoDecode] = ["HS256"]  # accepted for users; guests' are always HS256
    jwt_public_key: str | None = None  # PEM text, or a PEM file's path: verifies RS*/PS*/ES*/EdDSA tokens
    jwks_url: str | None = None  # the identity provider's JWKS (http/https): fetched at start, then in the background
    jwks_refresh_interval: float = Field(default=300.0, gt=0)  # seconds between background JWKS fetches
    jwks_min_refresh_interval: float = Field(default=30.0, ge=0)  # an unknown kid refetches at most this often
    jwks_timeout: float = Field(default=5.0, gt=0)  # seconds one JWKS fetch may take
    jwks_max_bytes: int = Field(default=256 * 1024, ge=1024)  # a larger JWKS response is refused
    jwt_audience: Annotated[list[str], NoDecode] = []  # when set, a token's 'aud' must name one of these
    jwt_issuer: str | None = None  # when set, a token's 'iss' must be exactly this

    # limits
    max_frame_bytes: int = Field(default=64 * 1024, ge=256)
    max_channels_per_connection: int = Field(default=100, ge=1)
    max_channel_length: int = Field(default=128, ge=8, le=1024)
    rate_limit: float = Field(default=50.0, gt=0)  # messages per second per connection
    rate_burst: int = Field(default=100, ge=1)
    abuse_strikes: int = Field(default=50, ge=1)  # rate_limited errors within abuse_window before closing
    abuse_window: float = Field(default=10.0, gt=0)
    send_queue_max_frames: int = Field(default=1000, ge=1)
    send_queue_max_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    # SO_SNDBUF of every accepted socket; None leaves it to the kernel (Linux grows it up to tcp_wmem's max, 4 MB)
    send_buffer_bytes: int | None = Field(default=None, ge=4096)
    close_timeout: float = Field(default=2.0, gt=0)  # seconds a close frame may take before the socket is dropped
    # SIGTERM/SIGINT: seconds a stopping node gives its connections to finish their requests and close (1001)
    shutdown_timeout: float = Field(default=10.0, gt=0)
    handshake_timeout: float = Field(default=10.0, gt=0)  # seconds to send a complete HTTP request/upgrade
    # the HTTP edge (hub/http_protocol.py; under hub serve and hub.testing)
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)  # an HTTP request body past this: 413
    max_pending_bodies: int = Field(default=128, ge=1)  # requests still sending a body, per process; past it: 503
    max_connections_per_address: int = Field(default=256, ge=0)  # per peer IP and process; 0: no cap; past it: 429
    # the fallback transport: server-sent events + POSTs at /sse (docs/protocol.md, "Fallback transport")
    sse: bool = True  # serve /sse for clients whose network refuses the WebSocket upgrade
    sse_post_max_bytes: int = Field(default=256 * 1024, ge=1024)  # one POST's frames, in bytes; past it: 413
    sse_post_max_frames: int = Field(default=100, ge=1)  # frames in one POST; past it: 413

    # timers
    heartbeat_interval: float = Field(default=25.0, gt=0)
    heartbeat_timeout: float = Field(default=60.0, gt=0)
    history_ttl: float = Field(default=600.0, gt=0)  # default for recoverable channels that set none
    dedup_window: float = Field(default=120.0, gt=0)  # how long a publish "mid" is remembered
    # how long a publish's mid stays claimed while its handler runs; a node that dies mid-publish frees it after this
    mid_pending_ttl: float = Field(default=10.0, gt=0)
    sweep_interval: float = Field(default=30.0, gt=0)  # how often expired history and dedup entries are freed
    presence_ttl: float = Field(default=30.0, gt=0)  # Redis: a dead node's members expire within this
    # the most members a sub reply or a presence page lists, and the room size up to which joins and leaves are
    # announced one by one; above it, a coalesced member count (<namespace>.presence) instead
    presence_list_limit: int = Field(default=100, ge=1, le=10_000)
    presence_count_interval: float = Field(default=1.0, gt=0)  # big rooms: how often a node announces the count
    # a member's presence metadata (sub's meta, presence_set), as JSON, after its channel's model filled it in
    presence_meta_max_bytes: int = Field(default=1024, ge=64, le=65536)
    probe_interval: float = Field(default=1.0, gt=0)  # Redis: how often each node probes its pub/sub
    probe_timeout: float = Field(default=3.0, gt=0)  # Redis: not ready after this long without a probe back
    reorder_timeout: float = Field(default=0.5, gt=0)  # Redis: how long an early event waits for a missing one
    metrics_interval: float = Field(default=2.0, gt=0)  # hub serve --workers: how often a worker shares its metrics
    node_ttl: float = Field(default=15.0, gt=0)  # Redis: a node that stops refreshing leaves the node list after it
    survey_timeout: float = Field(default=2.0, gt=0)  # server API: how long a cluster-wide call waits for other nodes

    # the admin page at /admin and its channel admin:overview (docs/operations.md, "Admin page")
    admin: bool = True  # serve /admin and the admin:* channels (to identities with the admin scope only)
    admin_interval: float = Field(default=1.0, gt=0)  # seconds between a node's admin.stats while an admin watches
    admin_token_ttl: float = Field(default=3600.0, gt=0)  # lifetime of the socket token /admin/login gives an API key
    admin_list_limit: int = Field(default=100, ge=1, le=10_000)  # clients and channels per node in one admin.stats

    @field_validator("log_level", mode="before")
    @classmethod
    def _known_log_level(cls, value: object) -> object:
        if isinstance(value, str) and value.strip().lower() not in LOG_LEVELS:
            raise PydanticCustomError("log_level", "should be one of " + ", ".join(LOG_LEVELS))
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("redis_url", "broker_url", "store_url", mode="before")
    @classmethod
    def _usable_url(cls, value: object, info: ValidationInfo) -> object:
        if isinstance(value, str) and value:
            problem = url_problem(value, URL_SCHEMES[info.field_name or ""])
            if problem:
                raise PydanticCustomError("url", problem)
        return value

    @field_validator("plugins", "allowed_origins", "api_keys", "jwt_algorithms", "jwt_audience", mode="before")
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("allowed_origins", mode="after")
    @classmethod
    def _origins(cls, value: list[str]) -> list[str]:
        for entry in value:
            if entry not in ("*", "null") and not _ORIGIN.fullmatch(entry):
                raise PydanticCustomError(
                    "origin",
                    "'{entry}' is no origin: write scheme://host[:port] with no path (https://app.example.com), or *",
                    {"entry": entry},
                )
        return value

    def resolved_loop(self) -> str:
        """The event loop to run: ``auto`` is uvloop when the package is importable, else asyncio."""
        if self.loop != "auto":
            return self.loop
        import importlib.util

        return "uvloop" if importlib.util.find_spec("uvloop") is not None else "asyncio"

    def resolved_broker_url(self) -> str:
        return self.broker_url or self.redis_url or "memory://"

    def resolved_store_url(self) -> str:
        return self.store_url or self.redis_url or f"sqlite:///{(self.data_dir / 'hub.sqlite3').resolve()}"

    def resolved_secret(self) -> str:
        """The JWT secret: the configured one, else one generated once and kept in the data directory."""
        if self.secret:
            return self.secret
        path = self.data_dir / "secret"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            # Written whole to a private temporary file (mode 0600 from creation), then linked into place:
            # link() fails if another process got there first, so every process reads one complete secret.
            staging = self.data_dir / f".secret-{os.getpid()}-{secrets.token_hex(4)}"
            fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as file:
                file.write(secrets.token_urlsafe(32))
            try:
                with contextlib.suppress(FileExistsError):  # another process published its secret first
                    os.link(staging, path)
            finally:
                staging.unlink()
        value = path.read_text().strip()
        if not value:
            raise ValueError(f"{path} is empty; delete it to generate a new secret")
        return value
