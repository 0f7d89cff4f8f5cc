"""The FastAPI peer: the "ConnectionManager" pattern from FastAPI's WebSockets docs, with rooms, under uvicorn.

A dict room -> list of WebSocket; a broadcast encodes the event once and awaits `send_text` on each
member in turn, as the docs' `broadcast()` does. Plain protocol on /ws:

    {"type": "join", "room": R}            -> {"type": "joined", "room": R}
    {"type": "send", "room": R, "text": T} -> {"type": "message", "room": R, "text": T} to room R,
                                              then {"type": "ack"} to the sender
"""

from __future__ import annotations

import json

from fastapi import FastAPI, WebSocket, WebSocketDisconnect
from serving import serve


class ConnectionManager:
    def __init__(self) -> None:
        self.rooms: dict[str, list[WebSocket]] = {}

    def join(self, room: str, websocket: WebSocket) -> None:
        members = self.rooms.setdefault(room, [])
        if websocket not in members:
            members.append(websocket)

    def disconnect(self, websocket: WebSocket) -> None:
        for room, members in list(self.rooms.items()):
            if websocket in members:
                members.remove(websocket)
                if not members:
                    del self.rooms[room]

    async def send_personal_message(self, message: str, websocket: WebSocket) -> None:
        await websocket.send_text(message)

    async def broadcast(self, room: str, message: str) -> None:
        for connection in self.rooms.get(room, []):
            await connection.send_text(message)


manager = ConnectionManager()
app = FastAPI()


@app.websocket("/ws")
async def websocket_endpoint(websocket: WebSocket) -> None:
    await websocket.accept()
    try:
        while True:
            data = await websocket.receive_text()
            try:
                message = json.loads(data)
            except ValueError:
                continue  # malformed input is ignored
            if not isinstance(message, dict) or not isinstance(message.get("room"), str):
                continue
            room = message["room"]
            if message.get("type") == "join":
                manager.join(room, websocket)
                await manager.send_personal_message(json.dumps({"type": "joined", "room": room}), websocket)
            elif message.get("type") == "send" and isinstance(message.get("text"), str):
                await manager.broadcast(room, json.dumps({"type": "message", "room": room, "text": message["text"]}))
                await manager.send_personal_message('{"type": "ack"}', websocket)
    except WebSocketDisconnect:
        manager.disconnect(websocket)


if __name__ == "__main__":
    serve(app, __doc__.splitlines()[0])
