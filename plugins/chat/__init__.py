"""chat: rooms ``chat:<room>`` with history that survives restarts, typing indicators, presence, edit/delete.

The entry point names :class:`Chat`, which each hub builds for itself with ``HUB_CHAT_*`` settings.
"""

from __future__ import annotations

from hub_realtime_plugins.chat.plugin import Chat, ChatSettings

__all__ = ["Chat", "ChatSettings"]
