"""docedit's options, from HUB_DOCEDIT_* environment variables (or given explicitly in tests)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

Access = Literal["none", "read", "edit"]
CreatePolicy = Literal["anyone", "users", "scope", "none"]


class DoceditSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HUB_DOCEDIT_", extra="ignore")

    auto_create: bool = True  # subscribing to a missing document creates it, owned by the subscriber
    # who may create documents (auto-create and docedit.create): guests too, signed-in users, tokens with the
    # docedit.create scope, or nobody (only documents that exist)
    create: CreatePolicy = "anyone"
    default_access: Access = "edit"  # `public` of an auto-created document (and of docedit.create without one)
    max_doc_bytes: int = Field(default=2_000_000, ge=1024)  # encoded full state of one document
    max_versions: int = Field(default=50, ge=1, le=1000)  # named versions kept per document; the oldest go first
    compact_every: int = Field(default=200, ge=1)  # stored updates of a document before they are compacted
    compact_lease_ttl: float = Field(default=30.0, gt=0)  # seconds one node may take to compact a document
    idle_check_interval: float = Field(default=30.0, gt=0)  # seconds between sweeps of idle documents and parts
    idle_timeout: float = Field(default=60.0, gt=0)  # a document without local users is closed after this long
    meta_touch_interval: float = Field(default=5.0, gt=0)  # seconds between writes of a doc's `updated`/`size`
    awareness_timeout: float = Field(default=30.0, gt=0)  # a cursor not renewed this long is forgotten
    part_ttl: float = Field(default=30.0, gt=0)  # seconds an incomplete chunked message is kept
    sync_rate: float = Field(default=50.0, gt=0)  # docedit.sync per second per connection (and /yjs messages)
    sync_burst: int = Field(default=200, ge=1)
    awareness_rate: float = Field(default=20.0, gt=0)  # docedit.awareness per second per connection
    awareness_burst: int = Field(default=40, ge=1)
    yjs_send_queue: int = Field(default=1000, ge=1)  # frames waiting for one /yjs socket before it is closed
    # the largest /yjs message (a stock Yjs client sends a whole offline document in one); None: a document's
    # limit plus room for the message's framing
    yjs_max_message_bytes: int | None = Field(default=None, ge=256)

    def yjs_message_limit(self) -> int:
        return self.yjs_max_message_bytes or self.max_doc_bytes + 1024
