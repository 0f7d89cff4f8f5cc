"""Guest ids carry 96 random bits: issue 15 found two guests sharing a 24-bit id after 4,155-10,300 guests, and
the second could then edit and delete the first's chat messages (authorship is the user id)."""

from __future__ import annotations

import re

from hub.auth import Authenticator, anonymous_identity
from hub.protocol import ROOM_RE
from hub.testing import TEST_SECRET

GUEST_ID = re.compile(r"guest-[0-9a-f]{24}")  # 24 hex digits: 96 bits


def test_a_guest_id_has_96_random_bits_in_a_readable_form():
    for _ in range(100):
        user = anonymous_identity().user
        assert GUEST_ID.fullmatch(user), user
        assert len(user) <= 128  # the limit on 'sub', which a guest's resume token carries
        assert ROOM_RE.fullmatch(user)  # usable as a room, like a signed-in user's id (notifications:<user>)


def test_twenty_thousand_guests_are_all_different():
    # With 24 bits a collision among 20,000 guests was a near certainty (p ~ 1 - e^-11.9); with 96 bits it is
    # about 2.5e-21.
    users = [anonymous_identity().user for _ in range(20_000)]
    assert len(set(users)) == len(users)


def test_a_guest_comes_back_as_itself_through_its_resume_token():
    authenticator = Authenticator(TEST_SECRET)
    guest = anonymous_identity()
    again = authenticator.verify(authenticator.issue_guest(guest, ttl=60))
    assert (again.user, again.name, again.anonymous) == (guest.user, guest.name, True)


async def test_a_guest_on_a_real_socket_gets_a_96_bit_id(hub_server, hub_client):
    server = hub_server()
    first, second = await hub_client(server), await hub_client(server)
    assert GUEST_ID.fullmatch(first.hello["user"]["user"])
    assert first.hello["user"]["user"] != second.hello["user"]["user"]
