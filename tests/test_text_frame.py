"""hub.server.text_frame builds the same bytes as the websockets library does for a server's text frame."""

from __future__ import annotations

import pytest
from websockets.frames import Frame, Opcode

from hub.server import text_frame


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 65535, 65536, 200_000])
def test_text_frame_matches_websockets(size: int) -> None:
    text = ("é" * size)[: max(size // 2, 0)] + "x" * (size - max(size // 2, 0))
    expected = Frame(Opcode.TEXT, text.encode()).serialize(mask=False)
    assert text_frame(text) == expected


def test_the_same_text_object_is_framed_once_and_a_different_one_again() -> None:
    first = "".join(["hello ", "world"])  # built at run time: a fresh object
    frame = text_frame(first)
    assert text_frame(first) is frame
    other = "".join(["hello ", "there"])
    assert text_frame(other) == Frame(Opcode.TEXT, other.encode()).serialize(mask=False)
