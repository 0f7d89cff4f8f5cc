"""Guest ids and names. Ids carry 96 random bits: issue 15 found two guests sharing a 24-bit id after
4,155-10,300 guests, and the second could then edit and delete the first's chat messages (authorship is the
user id). Names come from 900,000 (issue 19: two guests of one demo were both "Calm Lynx")."""

from __future__ import annotations

import re

from hub import guest_names
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


GUEST_NAME = re.compile(r"[A-Z][a-z]+ [A-Z][a-z]+ [1-9][0-9]")


def test_guest_names_come_from_900000_readable_names():
    assert len(set(guest_names.ADJECTIVES)) == len(guest_names.ADJECTIVES) == 100
    assert len(set(guest_names.ANIMALS)) == len(guest_names.ANIMALS) == 100
    assert len(guest_names.NUMBERS) == 90
    names = {anonymous_identity().name for _ in range(2_000)}
    assert all(GUEST_NAME.fullmatch(name) for name in names), sorted(names)[:5]
    assert all(len(name) <= 20 for name in names)


def test_a_room_of_100_guests_rarely_repeats_a_name():
    # 900,000 names: a repeat among 100 guests has p ~ 0.55 %, so 300 rooms expect 1.6 with a repeat. With the
    # old 100 names (10 x 10 words) every one of them would have one.
    rooms_with_a_repeat = 0
    for _ in range(300):
        names = [anonymous_identity().name for _ in range(100)]
        rooms_with_a_repeat += len(set(names)) < len(names)
    assert rooms_with_a_repeat <= 12  # Poisson(1.6): P(> 12) < 1e-8
