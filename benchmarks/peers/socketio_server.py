"""The python-socketio peer: an AsyncServer as an ASGI app under uvicorn, rooms with `enter_room` and `emit`.

Socket.IO protocol (Engine.IO v4, websocket transport only, default namespace, path /socket.io/):

    event "join" {"room": R}            -> enter_room(sid, R); ack {"ok": true}
    event "send" {"room": R, "text": T} -> emit("message", {"room": R, "text": T}, room=R); ack {"ok": true}

Everything else (ping interval 25 s, handlers run as tasks, the default in-process client manager) keeps
python-socketio's defaults.
"""

from __future__ import annotations

from typing import Any

import socketio
from serving import serve

sio = socketio.AsyncServer(async_mode="asgi", transports=["websocket"])
app = socketio.ASGIApp(sio)


def room_of(data: Any) -> str | None:
    if isinstance(data, dict) and isinstance(data.get("room"), str):
        return data["room"]
    return None


@sio.on("join")
async def join(sid: str, data: Any = None) -> dict[str, bool]:
    room = room_of(data)
    if room is None:
        return {"ok": False}
    await sio.enter_room(sid, room)
    return {"ok": True}


@sio.on("send")
async def send(sid: str, data: Any = None) -> dict[str, bool]:
    room = room_of(data)
    if room is None or not isinstance(data.get("text"), str):
        return {"ok": False}
    await sio.emit("message", {"room": room, "text": data["text"]}, room=room)
    return {"ok": True}


if __name__ == "__main__":
    serve(app, __doc__.splitlines()[0])
