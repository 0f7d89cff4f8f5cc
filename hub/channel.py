"""Channel: what a plugin declares — inbound message models and handlers, outbound events, options, snapshot."""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from pydantic import BaseModel, GetJsonSchemaHandler, SerializerFunctionWrapHandler, model_serializer
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import core_schema

from hub.limits import RateLimit
from hub.protocol import NAMESPACE_RE, TYPE_RE
from hub.types import HistoryPolicy, Identity

if TYPE_CHECKING:
    from hub.context import Context

ModelT = TypeVar("ModelT", bound=BaseModel)
Handler = Callable[["Context", Any], Awaitable[BaseModel | None]]
SnapshotProvider = Callable[["Context"], Awaitable[BaseModel | None]]
Policy = Callable[[Identity, str], bool]
"""An access rule: (identity, room) -> allowed?"""
Action = Literal["subscribe", "presence", "publish"]
Authorizer = Callable[["Context", Action, str | None], Awaitable[None]]
"""An async access rule: ``(ctx, action, message_type)``; returns to allow, raises :class:`hub.HubError` to refuse.
``message_type`` is the ``pub``'s type for "publish", None otherwise."""


RETURN_CONTRACT = "handlers and snapshot providers return a pydantic model (a BaseModel instance) or None"


def describe(function: object) -> str:
    """``module.qualname`` of a handler, for messages that name it."""
    return f"{getattr(function, '__module__', '?')}.{getattr(function, '__qualname__', repr(function))}"


def _returns_model_or_none(annotation: object) -> bool:
    if annotation is None or annotation is type(None) or annotation is Any:
        return True
    if isinstance(annotation, type):
        return issubclass(annotation, BaseModel)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return all(_returns_model_or_none(arg) for arg in typing.get_args(annotation))
    return False


def check_returns(function: Callable[..., object], what: str) -> None:
    """At registration: ``function`` is async and, when annotated, its return annotation is a model or None."""
    target = getattr(function, "__func__", function)
    if (inspect.isfunction(target) or inspect.ismethod(function)) and not inspect.iscoroutinefunction(function):
        raise TypeError(f"{what} ({describe(function)}) must be an async function")
    try:
        hints = typing.get_type_hints(function)
    except Exception:  # names only imported for type checking: the run-time check still holds
        return
    if "return" in hints and not _returns_model_or_none(hints["return"]):
        raise TypeError(f"{what} ({describe(function)}) is annotated to return {hints['return']!r}; {RETURN_CONTRACT}")


@dataclass(frozen=True, slots=True)
class Inbound:
    """One inbound message type: its pydantic model, its handler, and its own rate limit."""

    message_type: str
    model: type[BaseModel]
    handler: Handler
    rate_limit: RateLimit | None


class PresenceChanged(BaseModel):
    """The core's ``<namespace>.joined`` / ``<namespace>.left`` event on channels with presence, and
    ``<namespace>.presence_updated`` on those with presence metadata (rooms of at most ``presence_list_limit``
    members): the member. ``display`` is its name as the room shows it, unique in the room ("Alice (2)"), sent
    only when it is not ``name``; ``meta`` its metadata (the JSON of the channel's ``presence_meta`` model), sent
    only when set."""

    client: str
    user: str
    name: str
    display: str | None = None
    meta: Any = None

    @model_serializer(mode="wrap")
    def _without_defaults(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """``display`` and ``meta`` left out while None, as in presence lists (PresenceMember.as_dict)."""
        data: dict[str, Any] = handler(self)
        if data.get("display") is None:
            data.pop("display", None)
        if data.get("meta") is None:
            data.pop("meta", None)
        return data

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        """As sent (hub schema, the SDK's types): ``display`` and ``meta`` may be missing, never null; not the
        serializer's bare dict."""
        return {
            "title": cls.__name__,
            "type": "object",
            "properties": {
                "client": {"type": "string"},
                "user": {"type": "string"},
                "name": {"type": "string"},
                "display": {"type": "string", "description": "the room's unique name for the user, when not name"},
                "meta": {"description": "the member's presence metadata (the channel's presence_meta model)"},
            },
            "required": ["client", "user", "name"],
            "additionalProperties": False,
        }


class PresenceCount(BaseModel):
    """The core's ``<namespace>.presence`` event: a big room's member count, on every node, coalesced."""

    count: int


PRESENCE_RATE_LIMIT = RateLimit(rate=5, burst=10)
"""The default limit of a connection's presence metadata changes, per channel family: each one costs a frame
for every member of a small room."""


def allow_everyone(identity: Identity, room: str) -> bool:
    return True


def deny_anonymous(identity: Identity, room: str) -> bool:
    return not identity.anonymous


def only_room_owner(identity: Identity, room: str) -> bool:
    """For per-user channels such as ``notifications:<user>``."""
    return not identity.anonymous and identity.user == room


class Channel:
    """A family of channels ``<namespace>:<room>`` owned by one plugin.

    Declare it at import time, register handlers with :meth:`on`, events with :meth:`event`, the late-joiner
    snapshot with :meth:`snapshot`, and return it from the plugin's ``hub_channels`` hook.

    ``conflate``: every event is the channel's whole current state (a price, a position), so a client that
    reads slowly gets the latest one instead of a backlog: an event replaces the channel's previous event while
    that one still waits in the client's send queue. Counted in ``hub_conflated_events_total``.

    ``presence_meta``: a pydantic model for each member's presence metadata (a status, a device, "typing in doc
    X"), which a client sets with its ``sub`` and changes with ``presence_set`` (protocol.md §9): it is validated
    against the model (strictly, as a ``pub``'s data), bounded by the hub's ``presence_meta_max_bytes``, rate
    limited per connection and channel family by ``presence_rate_limit``, and announced as
    ``<namespace>.presence_updated``. Without it the channel refuses metadata. It needs ``presence=True``.

    ``can_subscribe`` / ``can_publish`` are fast synchronous policies on the identity and room. An access rule
    that needs I/O (a document's members in the store) is an async ``authorize`` (the argument, or the
    :meth:`authorize` decorator): it runs after the policies and every ``hub_authorize`` hook allowed the
    request, and before anything of the channel is read or written for it (presence, history, snapshot,
    handler).
    """

    def __init__(
        self,
        namespace: str,
        *,
        description: str = "",
        recoverable: bool = False,
        history_size: int = 0,
        history_ttl: float | None = None,
        presence: bool = False,
        presence_meta: type[BaseModel] | None = None,
        presence_rate_limit: RateLimit = PRESENCE_RATE_LIMIT,
        conflate: bool = False,
        can_subscribe: Policy = allow_everyone,
        can_publish: Policy = allow_everyone,
        authorize: Authorizer | None = None,
    ) -> None:
        if not NAMESPACE_RE.fullmatch(namespace):
            raise ValueError(f"namespace {namespace!r} must be lower_snake_case ASCII, at most 32 characters")
        if recoverable and history_size < 1:
            raise ValueError("a recoverable channel needs history_size >= 1")
        if conflate and (recoverable or presence):
            # Conflation drops events: offsets would have gaps, and a dropped join or leave would be lost.
            raise ValueError("a conflating channel cannot be recoverable or keep presence")
        if presence_meta is not None and not (isinstance(presence_meta, type) and issubclass(presence_meta, BaseModel)):
            raise TypeError(f"presence_meta of '{namespace}:*' must be a pydantic model class")
        if presence_meta is not None and not presence:
            raise ValueError(f"presence_meta of '{namespace}:*' needs presence=True")
        self.namespace = namespace
        self.description = description
        self.recoverable = recoverable
        self.history_size = history_size
        self.history_ttl = history_ttl
        self.presence = presence
        self.presence_meta = presence_meta
        self.presence_rate_limit = presence_rate_limit
        self.conflate = conflate
        self.can_subscribe = can_subscribe
        self.can_publish = can_publish
        self._inbound: dict[str, Inbound] = {}
        self._events: dict[str, type[BaseModel]] = {}
        self._snapshot: SnapshotProvider | None = None
        self._authorizer: Authorizer | None = None
        self._history: tuple[tuple[float, int, float | None], HistoryPolicy] | None = None  # the last one built
        if authorize is not None:
            self.authorize(authorize)
        if presence:
            self._events[f"{namespace}.joined"] = PresenceChanged
            self._events[f"{namespace}.left"] = PresenceChanged
            self._events[f"{namespace}.presence"] = PresenceCount
        if presence_meta is not None:
            self._events[f"{namespace}.presence_updated"] = PresenceChanged

    def _check_type(self, message_type: str) -> None:
        if not TYPE_RE.fullmatch(message_type) or not message_type.startswith(self.namespace + "."):
            raise ValueError(f"message type {message_type!r} must look like '{self.namespace}.<verb>'")

    def on(
        self, message_type: str, model: type[ModelT], *, rate_limit: RateLimit | None = None
    ) -> Callable[[Callable[[Context, ModelT], Awaitable[BaseModel | None]]], Any]:
        """Register the handler of an inbound message type; ``data`` is validated against ``model`` first."""
        self._check_type(message_type)
        if message_type in self._inbound:
            raise ValueError(f"{message_type!r} already has a handler")

        def register(handler: Callable[[Context, ModelT], Awaitable[BaseModel | None]]) -> Any:
            check_returns(handler, f"the handler of {message_type!r}")
            self._inbound[message_type] = Inbound(message_type, model, handler, rate_limit)
            return handler

        return register

    def event(self, event_type: str, model: type[BaseModel]) -> None:
        """Declare an outbound event type and its model; publishing an undeclared type is an error."""
        self._check_type(event_type)
        if event_type in self._events:
            raise ValueError(f"event {event_type!r} is already declared")
        self._events[event_type] = model

    def snapshot(self, provider: SnapshotProvider) -> SnapshotProvider:
        """Register what a late joiner gets in its ``sub`` reply."""
        check_returns(provider, f"the snapshot provider of '{self.namespace}:*'")
        self._snapshot = provider
        return provider

    def authorize(self, authorizer: Authorizer) -> Authorizer:
        """Register the channel's async access rule, ``async def rule(ctx, action, message_type) -> None``.

        ``action`` is "subscribe" (a ``sub``), "presence" (a ``presence`` request) or "publish" (a ``pub`` of
        ``message_type``, before its data is validated). Raise :class:`hub.HubError` to refuse: its code and
        sentence are the client's ``err``. It runs after ``can_subscribe`` / ``can_publish`` and every
        ``hub_authorize`` hook allowed the request, and before the hub writes presence, reads history, takes the
        snapshot or calls the handler, so a refused client leaves no trace. Access withdrawn later is
        :meth:`hub.Hub.revoke`'s business: this rule only runs when a request comes in.
        """
        if not inspect.iscoroutinefunction(authorizer):
            raise TypeError(f"the authorize rule of channel '{self.namespace}:*' must be an async function")
        if self._authorizer is not None:
            raise ValueError(f"channel '{self.namespace}:*' already has an authorize rule")
        self._authorizer = authorizer
        return authorizer

    @property
    def authorizer(self) -> Authorizer | None:
        return self._authorizer

    @property
    def inbound(self) -> Mapping[str, Inbound]:
        return self._inbound

    @property
    def events(self) -> Mapping[str, type[BaseModel]]:
        return self._events

    @property
    def snapshot_provider(self) -> SnapshotProvider | None:
        return self._snapshot

    def history_policy(self, default_ttl: float) -> HistoryPolicy | None:
        if not self.recoverable:
            return None
        key = (default_ttl, self.history_size, self.history_ttl)
        cached = self._history
        if cached is None or cached[0] != key:  # built once, not per publish
            cached = self._history = (key, HistoryPolicy(self.history_size, self.history_ttl or default_ttl))
        return cached[1]
