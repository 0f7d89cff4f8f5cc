"""The ASGI application of the Channels peer: Django for HTTP, the room consumer on /ws."""

from __future__ import annotations

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "channels_app.settings")

from django.core.asgi import get_asgi_application

# Django must be set up (get_asgi_application does it) before the consumer and routing are imported.
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import path  # noqa: E402

from channels_app.consumers import RoomConsumer  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": URLRouter([path("ws", RoomConsumer.as_asgi())]),
    }
)
