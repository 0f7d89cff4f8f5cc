"""Router: channel namespace -> Channel and message type -> Inbound, built once at start-up; validates data."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError, create_model

from hub.channel import Channel, Inbound
from hub.errors import HubError
from hub.protocol import ErrorCode, split_channel, validation_details
from hub.types import JSON

# The rest of the envelope was checked by decode_frame: here only data is read (the other members are skipped).
_ENVELOPE_CONFIG = ConfigDict(extra="ignore")


class DuplicateNamespace(Exception):
    """Two plugins declared the same channel namespace; the hub refuses to start."""


RESOLVED_CACHE_SIZE = 4096  # channel names remembered as resolved; forgotten all at once when full


class Router:
    def __init__(self, channels: Iterable[tuple[str, Channel]], *, max_channel_length: int) -> None:
        self._channels: dict[str, Channel] = {}
        # Valid names only (a refused one raises before it is stored), so a client cannot fill it with garbage;
        # bounded, so many rooms cost a re-check now and then, not memory.
        self._resolved: dict[str, tuple[Channel, str]] = {}
        self._frame_adapters: dict[type[BaseModel], TypeAdapter[Any]] = {}  # message model -> its pub frame's
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
        resolved = self._resolved.get(name)
        if resolved is not None:
            return resolved
        namespace, room = split_channel(name, self.max_channel_length)
        channel = self._channels.get(namespace)
        if channel is None:
            raise HubError(
                ErrorCode.UNKNOWN_CHANNEL,
                f"No enabled plugin serves channels '{namespace}:*'; "
                f"enabled: {', '.join(sorted(self._channels)) or 'none'}.",
            )
        if len(self._resolved) >= RESOLVED_CACHE_SIZE:
            self._resolved.clear()
        resolved = self._resolved[name] = (channel, room)
        return resolved

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

    def validate_frame(self, inbound: Inbound, frame: str | bytes, data: JSON) -> BaseModel:
        """The ``data`` of the ``pub`` frame ``frame`` (its text, already decoded into ``data`` and its envelope
        checked) as the message's model: :meth:`validate`'s rules, read from the frame's own text in one pass,
        without writing ``data`` back to JSON first (for a 200-point stroke that is a fifth of the decoding)."""
        if data is None:  # absent or null: the model's own error, as validate() gives it
            return self.validate(inbound, data)
        adapter = self._frame_adapters.get(inbound.model)
        if adapter is None:
            adapter = self._frame_adapters[inbound.model] = TypeAdapter(
                create_model(f"Pub{inbound.model.__name__}", data=(inbound.model, ...), __config__=_ENVELOPE_CONFIG)
            )
        try:
            return adapter.validate_json(frame, strict=True).data  # type: ignore[no-any-return]
        except ValidationError as exc:
            details = validation_details(exc)
            for detail in details:  # relative to data, as validate() says it
                detail["loc"] = detail["loc"][1:]
            raise HubError(ErrorCode.INVALID, f"Invalid data for {inbound.message_type!r}.", details) from None

    @staticmethod
    def validate(inbound: Inbound, data: JSON) -> BaseModel:
        """``data`` as the message's model, accepting exactly what the model's JSON Schema (``hub schema``) says.

        pydantic's strict mode on JSON input: no value changes its JSON type on the way in (``"1"`` or ``true``
        for a number, ``1`` or ``"yes"`` for a boolean, ``1.0`` for an integer, ``1`` for a string are
        refused), while what JSON cannot spell otherwise stays accepted (an integer for a number, an array for
        a tuple, a string for an enum), which strict mode on Python input would refuse. Applied here, it holds
        for every plugin's models, third-party ones included, whatever their own config says. ``data`` comes
        from orjson (strict JSON), so writing it back costs a few hundred ns for a small message.
        """
        try:
            text = orjson.dumps(data)
        except orjson.JSONEncodeError:  # only a Python caller can pass what JSON cannot carry
            raise HubError(ErrorCode.INVALID, f"Invalid data for {inbound.message_type!r}: not JSON.") from None
        try:
            return inbound.model.model_validate_json(text, strict=True)
        except ValidationError as exc:
            raise HubError(
                ErrorCode.INVALID, f"Invalid data for {inbound.message_type!r}.", validation_details(exc)
            ) from None
