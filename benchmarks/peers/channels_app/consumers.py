"""The room consumer: groups for rooms, group_send for fan-out, the pattern from the Channels tutorial.

Plain protocol:

    {"type": "join", "room": R}            -> group_add(R); {"type": "joined", "room": R}
    {"type": "send", "room": R, "text": T} -> group_send(R, room.message); {"type": "ack"} to the sender;
                                              each member's room_message() sends
                                              {"type": "message", "room": R, "text": T}
"""

from __future__ import annotations

import json
import re
from typing import Any

from channels.generic.websocket import AsyncJsonWebsocketConsumer

# Channels' own rule for group names (channels.layers.BaseChannelLayer); other rooms are ignored.
GROUP_NAME = re.compile(r"[a-zA-Z\d\-_.]{1,99}")


class RoomConsumer(AsyncJsonWebsocketConsumer):  # type: ignore[misc]
    async def connect(self) -> None:
        self.rooms: set[str] = set()
        await self.accept()

    async def disconnect(self, code: int) -> None:
        for room in self.rooms:
            await self.channel_layer.group_discard(room, self.channel_name)

    @classmethod
    async def decode_json(cls, text_data: str) -> Any:
        try:
            return json.loads(text_data)
        except ValueError:
            return None  # malformed input is ignored

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        if not isinstance(content, dict):
            return
        room = content.get("room")
        if not isinstance(room, str) or not GROUP_NAME.fullmatch(room):
            # Tell the client at once (a load generator would otherwise wait for "joined" until it timed out).
            await self.send_json({"type": "error", "reason": "room names are ASCII letters, digits, - _ . (< 100)"})
            return
        if content.get("type") == "join":
            await self.channel_layer.group_add(room, self.channel_name)
            self.rooms.add(room)
            await self.send_json({"type": "joined", "room": room})
        elif content.get("type") == "send" and isinstance(content.get("text"), str):
            await self.channel_layer.group_send(room, {"type": "room.message", "room": room, "text": content["text"]})
            await self.send_json({"type": "ack"})

    async def room_message(self, event: dict[str, Any]) -> None:
        await self.send_json({"type": "message", "room": event["room"], "text": event["text"]})
