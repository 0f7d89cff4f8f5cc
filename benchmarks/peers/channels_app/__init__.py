"""The Django Channels peer: a minimal Django project with one group-based consumer, served by uvicorn."""
