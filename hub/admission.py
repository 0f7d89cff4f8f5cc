"""Admission at the HTTP edge: connections per peer address, requests still sending their body, and the peers
trusted as proxies. Bookkeeping only, one per serving process; hub/server.py's HTTP protocol acts on it."""

from __future__ import annotations

import ipaddress
from collections.abc import Hashable, Iterable

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class TrustedPeers:
    """The addresses uvicorn trusts for ``X-Forwarded-For`` (``FORWARDED_ALLOW_IPS``: addresses, networks such as
    ``10.0.0.0/8``, or ``*``), read the way uvicorn reads them. A trusted proxy carries many clients' connections,
    so the per-address cap does not apply to it."""

    def __init__(self, spec: str | Iterable[str]) -> None:
        entries = [part.strip() for part in (spec.split(",") if isinstance(spec, str) else spec) if part.strip()]
        self.everyone = "*" in entries
        self._addresses: set[IPAddress] = set()
        self._networks: list[IPNetwork] = []
        self._literals: set[str] = set()
        for entry in entries:
            try:
                if "/" in entry:
                    self._networks.append(ipaddress.ip_network(entry, strict=False))
                else:
                    self._addresses.add(ipaddress.ip_address(entry))
            except ValueError:
                self._literals.add(entry)  # a unix socket path or a name: compared as written

    def __contains__(self, host: str) -> bool:
        if self.everyone or host in self._literals:
            return True
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return address in self._addresses or any(address in network for network in self._networks)


class Admission:
    """What one serving process admits. ``max_per_address`` connections (HTTP and WebSocket alike) from one peer
    address, 0 for no cap; ``max_pending_bodies`` requests whose body is still arriving."""

    def __init__(self, *, max_per_address: int, max_pending_bodies: int, trusted: TrustedPeers | None = None) -> None:
        self.max_per_address = max_per_address
        self.max_pending_bodies = max_pending_bodies
        self.trusted = trusted or TrustedPeers(())
        self._per_address: dict[str, int] = {}
        self._pending_bodies: set[Hashable] = set()

    def counts(self, address: str) -> bool:
        """Is a connection from ``address`` subject to the per-address cap?"""
        return self.max_per_address > 0 and address not in self.trusted

    def acquire(self, address: str) -> bool:
        """Count one more connection from ``address``; False (and not counted) when it already holds its cap."""
        held = self._per_address.get(address, 0)
        if held >= self.max_per_address:
            return False
        self._per_address[address] = held + 1
        return True

    def release(self, address: str) -> None:
        held = self._per_address.get(address, 0) - 1
        if held > 0:
            self._per_address[address] = held
        else:
            self._per_address.pop(address, None)

    def connections_from(self, address: str) -> int:
        return self._per_address.get(address, 0)

    def begin_body(self, request: Hashable) -> bool:
        """``request`` waits for its body; False (and not counted) when ``max_pending_bodies`` already do."""
        if len(self._pending_bodies) >= self.max_pending_bodies:
            return False
        self._pending_bodies.add(request)
        return True

    def end_body(self, request: Hashable) -> None:
        self._pending_bodies.discard(request)

    @property
    def pending_bodies(self) -> int:
        return len(self._pending_bodies)
