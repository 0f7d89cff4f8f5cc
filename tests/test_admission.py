"""hub.admission without sockets: the per-address counts, the pending bodies, and which peers are trusted proxies."""

from __future__ import annotations

import pickle

import pytest

from hub.admission import Admission, TrustedPeers
from hub.http_protocol import body_framing, refusal


def test_trusted_peers_read_addresses_networks_and_star_as_uvicorn_does():
    trusted = TrustedPeers("127.0.0.1, ::1,10.0.0.0/8, proxy.sock")
    assert "127.0.0.1" in trusted
    assert "::1" in trusted
    assert "0:0:0:0:0:0:0:1" in trusted  # compared as addresses, not text
    assert "10.20.30.40" in trusted
    assert "proxy.sock" in trusted
    assert "127.0.0.2" not in trusted
    assert "not an address" not in trusted
    assert "anything" in TrustedPeers("*")
    assert "127.0.0.1" not in TrustedPeers(())


def test_an_address_holds_at_most_its_cap_and_gets_slots_back():
    admission = Admission(max_per_address=2, max_pending_bodies=10)
    assert admission.counts("192.0.2.1")
    assert admission.acquire("192.0.2.1")
    assert admission.acquire("192.0.2.1")
    assert not admission.acquire("192.0.2.1")  # refused, and not counted
    assert admission.acquire("192.0.2.2")  # another address
    admission.release("192.0.2.1")
    assert admission.connections_from("192.0.2.1") == 1
    assert admission.acquire("192.0.2.1")
    admission.release("192.0.2.1")
    admission.release("192.0.2.1")
    assert admission.connections_from("192.0.2.1") == 0
    assert admission._per_address == {"192.0.2.2": 1}  # an address that left takes no memory


@pytest.mark.parametrize(("cap", "address"), [(0, "192.0.2.1"), (5, "127.0.0.1")], ids=["cap-off", "trusted"])
def test_trusted_proxies_and_a_zero_cap_are_not_counted(cap, address):
    admission = Admission(max_per_address=cap, max_pending_bodies=10, trusted=TrustedPeers("127.0.0.1"))
    assert not admission.counts(address)


def test_pending_bodies_are_bounded():
    admission = Admission(max_per_address=0, max_pending_bodies=2)
    first, second, third = object(), object(), object()
    assert admission.begin_body(first)
    assert admission.begin_body(second)
    assert not admission.begin_body(third)
    admission.end_body(first)
    admission.end_body(first)  # twice is harmless
    assert admission.begin_body(third)
    assert admission.pending_bodies == 2


def test_admission_travels_to_worker_processes():
    # `hub serve --workers N` pickles the uvicorn config (and this with it) into each worker.
    admission = Admission(max_per_address=3, max_pending_bodies=4, trusted=TrustedPeers("10.0.0.0/8"))
    copy = pickle.loads(pickle.dumps(admission))
    assert copy.max_per_address == 3
    assert "10.1.2.3" in copy.trusted


def test_a_refusal_is_one_complete_response_with_a_json_line():
    head, _, body = refusal(429, 'Too many "connections".').partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 429 Too Many Requests\r\n")
    assert b"\r\nconnection: close" in head
    assert f"content-length: {len(body)}".encode() in head
    assert body == b'{"detail":"Too many \\"connections\\"."}'


def test_body_framing():
    assert body_framing([(b"host", b"x"), (b"content-length", b"12")]) == (12, False)
    assert body_framing([(b"transfer-encoding", b"chunked")]) == (None, True)
    assert body_framing([]) == (None, False)
