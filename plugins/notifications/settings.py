"""notifications' options, from HUB_NOTIFICATIONS_* environment variables (or given explicitly in tests)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from hub_realtime_plugins.notifications.messages import MAX_TTL


class NotificationsSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HUB_NOTIFICATIONS_", extra="ignore")

    default_ttl: float = Field(default=7 * 86400.0, gt=0, le=MAX_TTL)  # seconds a notification lives
    max_ttl: float = Field(default=30 * 86400.0, gt=0, le=MAX_TTL)  # the largest ttl a publisher may ask for
    snapshot_size: int = Field(default=50, ge=1, le=1000)  # notifications in the subscribe snapshot
    retention: int = Field(default=200, ge=1, le=10_000)  # notifications kept per user; older ones are trimmed
    broadcast_retention: int = Field(default=200, ge=1, le=10_000)  # "everyone" notifications kept
    purge_interval: float = Field(default=60.0, gt=0)  # seconds between two purges of expired records
    send_rate: float = Field(default=1.0, gt=0)  # notifications.send per second per connection
    send_burst: int = Field(default=5, ge=1)
    idempotency_window: float = Field(default=86400.0, gt=0)  # seconds an Idempotency-Key is remembered
    idempotency_wait: float = Field(default=5.0, gt=0)  # how long a retry waits for a concurrent first try
    idempotency_stale: float = Field(default=30.0, gt=0)  # a claim pending this long is taken over (node died)
    publish_concurrency: int = Field(default=32, ge=1, le=1000)  # recipients written and published at once
