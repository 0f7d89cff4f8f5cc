"""The hub's Python client: an asyncio client of the wire protocol (docs/protocol.md) for backends and bots, with
the semantics of the browser SDK hub.js. Documented in docs/client.md, "Python client".

    from hub.client import Client

    async with Client("ws://127.0.0.1:8000/ws", token=jwt) as client:
        client.subscribe("chat:lobby", events={"chat.posted": lambda event: print(event.data["text"])})
        await client.publish("chat:lobby", "chat.send", {"text": "hello"})

Not part of ``hub``'s plugin API (``hub.__all__``): plugins run inside a hub, this client talks to one from outside.
"""

from __future__ import annotations

from hub.client.backoff import Backoff
from hub.client.client import Client
from hub.client.core import TokenSource
from hub.client.errors import ClientError
from hub.client.subscription import Subscription
from hub.client.types import (
    Event,
    Hello,
    Member,
    PresenceChange,
    PresencePage,
    StateChange,
    SubscriptionInfo,
    User,
)

__all__ = [
    "Backoff",
    "Client",
    "ClientError",
    "Event",
    "Hello",
    "Member",
    "PresenceChange",
    "PresencePage",
    "StateChange",
    "Subscription",
    "SubscriptionInfo",
    "TokenSource",
    "User",
]
