"""LivedataSettings: the plugin's options, from HUB_LIVEDATA_* environment variables."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

SYMBOL_RE = re.compile(r"^[A-Za-z0-9_.@=+-]{1,32}$")  # a room name (docs/protocol.md §11), kept short
DEFAULT_SYMBOLS = ["ACME", "GLOBX", "HOOLI", "INITECH", "STARK", "UMBRL"]


class LivedataSettings(BaseSettings):
    """Every timer is a setting, so tests run feeds, leases and checks in milliseconds."""

    model_config = SettingsConfigDict(env_prefix="HUB_LIVEDATA_", extra="ignore")

    # "simulated" (the built-in market) or "package.module:factory", a callable taking these settings
    source: str = "simulated"
    symbols: Annotated[list[str], NoDecode] = Field(default_factory=lambda: list(DEFAULT_SYMBOLS))  # simulated
    interval: float = Field(default=0.5, gt=0)  # simulated: seconds between two ticks of one symbol
    volatility: float = Field(default=0.002, ge=0, le=0.5)  # simulated: std dev of one tick's log return
    seed: int | None = None  # simulated: same seed, same prices (each symbol seeded on its own)
    history_size: int = Field(default=60, ge=1, le=1000)  # points in the snapshot, for the sparkline
    lease_ttl: float = Field(default=5.0, gt=0)  # a dead owner's feed moves after at most this + check_interval
    check_interval: float = Field(default=1.0, gt=0)  # how often a node looks for feeds to start or stop
    retry_delay: float = Field(default=5.0, gt=0)  # after a feed failed (its source raised), wait this long
    # latest wins for slow readers; off, every reader gets every tick or is closed as a slow consumer (4009)
    conflate: bool = True

    @field_validator("symbols", mode="before")
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("symbols")
    @classmethod
    def _check_symbols(cls, value: list[str]) -> list[str]:
        for symbol in value:
            if not SYMBOL_RE.fullmatch(symbol):
                raise ValueError(f"symbol {symbol!r} must be 1-32 characters of A-Z a-z 0-9 _ . @ = + -")
        if len(set(value)) != len(value):
            raise ValueError("symbols must be unique")
        return value
