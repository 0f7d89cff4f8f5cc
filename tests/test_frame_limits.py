"""Hub.limit_websocket_frames: which of a plugin's WebSocket paths take bigger messages (end to end: docedit's
/yjs test in tests/e2e/test_docedit.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hub.plugin_catalog import PluginCatalog
from hub.runtime import Runtime
from hub.settings import HubSettings


def make_hub(tmp_path: Path) -> Runtime:
    return Runtime(HubSettings(data_dir=tmp_path), PluginCatalog())


def test_the_longest_matching_prefix_wins(tmp_path: Path) -> None:
    hub = make_hub(tmp_path)
    hub.limit_websocket_frames("/yjs/", 1_000_000)
    hub.limit_websocket_frames("/yjs/big/", 5_000_000)
    assert hub.websocket_frame_limit("/yjs/notes") == 1_000_000
    assert hub.websocket_frame_limit("/yjs/big/notes") == 5_000_000
    assert hub.websocket_frame_limit("/other") is None
    assert hub.websocket_frame_limit("/ws") is None


@pytest.mark.parametrize("prefix", ["/ws", "/ws/", "/", "yjs/"])
def test_the_hubs_own_socket_and_bad_prefixes_are_refused(tmp_path: Path, prefix: str) -> None:
    with pytest.raises(ValueError, match="prefix"):
        make_hub(tmp_path).limit_websocket_frames(prefix, 1_000_000)


def test_a_limit_is_at_least_256_bytes(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="256"):
        make_hub(tmp_path).limit_websocket_frames("/yjs/", 100)
