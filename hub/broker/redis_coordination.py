"""RedisCoordination: publish dedup keys (pending/done, in their channel's slot) and leases (SET NX PX) in Redis."""

from __future__ import annotations

from hub.broker.protocols import MidClaim
from hub.broker.redis import RedisConnection, milliseconds
from hub.broker.redis_scripts import CLAIM_MID, LEASE_ACQUIRE, LEASE_RELEASE


class RedisCoordination:
    def __init__(self, connection: RedisConnection) -> None:
        self.connection = connection
        client = connection.client
        self._claim_mid_script = client.register_script(CLAIM_MID)
        self._lease_acquire_script = client.register_script(LEASE_ACQUIRE)
        self._lease_release_script = client.register_script(LEASE_RELEASE)

    def mid_key(self, key: str) -> str:
        """In the slot of the key's channel (the part before its first NUL), beside the channel's stream, so the
        publish script can mark it done (on a Cluster, a script's keys must share a slot)."""
        channel, _, rest = key.partition("\x00")
        return self.connection.key(channel, f"mid:{rest}")

    async def claim_mid(self, key: str, ttl: float) -> MidClaim:
        found = await self.connection.call(self._claim_mid_script(keys=[self.mid_key(key)], args=[milliseconds(ttl)]))
        if found == 1:
            return "claimed"
        return "done" if found == b"d" else "pending"

    async def confirm_mid(self, key: str, ttl: float) -> None:
        await self.connection.call(self.connection.client.set(self.mid_key(key), b"d", px=milliseconds(ttl)))

    async def release_mid(self, key: str) -> None:
        await self.connection.call(self.connection.client.delete(self.mid_key(key)))

    def _lease_key(self, name: str) -> str:
        return f"{self.connection.prefix}:lease:{{{name}}}"

    async def lease_acquire(self, name: str, owner: str, ttl: float) -> bool:
        reply = await self.connection.call(
            self._lease_acquire_script(keys=[self._lease_key(name)], args=[owner, milliseconds(ttl)])
        )
        return bool(reply)

    async def lease_release(self, name: str, owner: str) -> None:
        await self.connection.call(self._lease_release_script(keys=[self._lease_key(name)], args=[owner]))
