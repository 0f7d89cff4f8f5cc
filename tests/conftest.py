"""Shared fixtures: hub.testing's real-server fixtures, used exactly as a plugin author would."""

pytest_plugins = ["hub.testing"]
