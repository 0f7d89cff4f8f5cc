"""chat: rooms ``chat:<room>`` with history that survives restarts, typing indicators, presence, edit/delete."""

from __future__ import annotations

from hub import Channel, hookimpl
from plugins.chat.handlers import chat


@hookimpl
def hub_channels() -> list[Channel]:
    return [chat]
