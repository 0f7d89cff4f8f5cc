"""Router: channel namespace -> Channel and message type -> Inbound, built once at start-up; validates data."""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import BaseModel, ValidationError

from hub.channel import Channel, Inbound
from hub.errors import HubError
from hub.protocol import ErrorCode, split_channel, validation_details
from hub.types import JSON


class DuplicateNamespace(Exception):
    """Two plugins declared the same channel namespace; the hub refuses to start."""


class Router:
    def __init__(self, channels: Iterable[tuple[str, Channel]], *, max_channel_length: int) -> None:
        self._channels: dict[str, Channel] = {}
        self._owners: dict[str, str] = {}
        self.max_channel_length = max_channel_length
        for plugin, channel in channels:
            owner = self._owners.get(channel.namespace)
            if owner is not None:
                raise DuplicateNamespace(
                    f"channel namespace {channel.namespace!r} is declared by both {owner!r} and {plugin!r}"
                )
            self._channels[channel.namespace] = channel
            self._owners[channel.namespace] = plugin

    @property
    def channels(self) -> dict[str, Channel]:
        return dict(self._channels)

    def owner(self, namespace: str) -> str:
        return self._owners[namespace]

    def resolve(self, name: str) -> tuple[Channel, str]:
        """Check a channel name and find the Channel that owns it; returns (channel, room)."""
        namespace, room = split_channel(name, self.max_channel_length)
        channel = self._channels.get(namespace)
        if channel is None:
            raise HubError(
                ErrorCode.UNKNOWN_CHANNEL,
                f"No enabled plugin serves channels '{namespace}:*'; "
                f"enabled: {', '.join(sorted(self._channels)) or 'none'}.",
            )
        return channel, room

    @staticmethod
    def inbound(channel: Channel, message_type: str) -> Inbound:
        inbound = channel.inbound.get(message_type)
        if inbound is None:
            known = ", ".join(sorted(channel.inbound)) or "none"
            raise HubError(
                ErrorCode.UNKNOWN_TYPE,
                f"Channel '{channel.namespace}:*' accepts no message of type {message_type[:65]!r}; "
                f"it accepts: {known}.",
            )
        return inbound

    @staticmethod
    def validate(inbound: Inbound, data: JSON) -> BaseModel:
        try:
            return inbound.model.model_validate(data)
        except ValidationError as exc:
            raise HubError(
                ErrorCode.INVALID, f"Invalid data for {inbound.message_type!r}.", validation_details(exc)
            ) from None
