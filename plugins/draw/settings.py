"""draw's settings: its limits, rate limits and edit policy, from HUB_DRAW_* environment variables."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from hub_realtime_plugins.draw.board import EditPolicy, Limits


class DrawSettings(BaseSettings):
    """draw's options, from HUB_DRAW_* environment variables (docs/draw.md, "Settings")."""

    model_config = SettingsConfigDict(env_prefix="HUB_DRAW_", extra="ignore")

    history_size: int = Field(default=200, ge=1)  # events kept per board for recovery after a short disconnect
    max_objects: int = Field(default=2000, ge=1)  # live objects per board
    max_object_bytes: int = Field(default=32_768, ge=256)  # one object's JSON
    max_board_bytes: int = Field(default=2_097_152, ge=1024)  # all live objects' JSON: the snapshot must fit
    max_points: int = Field(default=2000, ge=2)  # per path, and per draw.stroke message
    max_put_objects: int = Field(default=100, ge=1)  # per draw.put or draw.delete message
    max_tombstones: int = Field(default=5000, ge=4)  # per board; the oldest are pruned beyond it
    put_rate: float = Field(default=20.0, gt=0)
    put_burst: int = Field(default=40, ge=1)
    delete_rate: float = Field(default=10.0, gt=0)
    delete_burst: int = Field(default=20, ge=1)
    clear_rate: float = Field(default=0.5, gt=0)
    clear_burst: int = Field(default=2, ge=1)
    cursor_rate: float = Field(default=15.0, gt=0)
    cursor_burst: int = Field(default=30, ge=1)
    stroke_rate: float = Field(default=20.0, gt=0)
    stroke_burst: int = Field(default=40, ge=1)
    edit: EditPolicy = EditPolicy.ANYONE  # who may change or delete an object (docs/draw.md, "Who may change what")
    moderator_scope: str = Field(default="moderator", min_length=1)  # a token scope that may change and clear all

    def limits(self) -> Limits:
        return Limits(
            max_objects=self.max_objects,
            max_object_bytes=self.max_object_bytes,
            max_board_bytes=self.max_board_bytes,
            max_points=self.max_points,
            max_put_objects=self.max_put_objects,
            max_tombstones=self.max_tombstones,
        )
