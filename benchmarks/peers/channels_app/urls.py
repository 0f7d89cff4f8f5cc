"""No HTTP views: the peer only serves the WebSocket route in channels_app.asgi."""

from __future__ import annotations

from django.urls import URLPattern

urlpatterns: list[URLPattern] = []
