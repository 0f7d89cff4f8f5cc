"""MemoryNodes: the one node of a memory broker, which is its whole cluster."""

from __future__ import annotations

import time
from collections.abc import Callable

from hub.broker.protocols import Answer, NodeRecord, Survey


class MemoryNodes:
    """A memory broker serves one process: the registry lists this node, and a survey asks only it."""

    def __init__(self, node_id: str) -> None:
        self.node_id = node_id
        self._describe: Callable[[], bytes] | None = None
        self._answer: Answer | None = None

    async def start(self, describe: Callable[[], bytes], answer: Answer) -> None:
        self._describe = describe
        self._answer = answer

    async def close(self) -> None:
        self._describe = self._answer = None

    async def live(self) -> list[NodeRecord]:
        if self._describe is None:
            return []
        return [NodeRecord(self.node_id, self._describe(), time.time())]

    async def survey(self, request: bytes, timeout: float) -> Survey:
        if self._answer is None:
            return Survey({})
        return Survey({self.node_id: await self._answer(request)})
