"""The built-in plugins (chat, draw, notifications, livedata, docedit).

Installed and imported as ``hub_realtime_plugins`` (the repository's hub_realtime_plugins symlink names this
folder), so the wheel adds no generic top-level ``plugins`` package. Each registers through the same
``hub.plugins`` entry-point group as a third-party plugin; nothing in hub/ imports them.
"""
