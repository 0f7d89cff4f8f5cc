"""Guests' display names: an adjective, an animal and a number, "Calm Lynx 42".

The space is 100 adjectives x 100 animals x 90 numbers = 900,000 names, so among 100 guests a repeat has a
probability of about 1 - exp(-100 * 99 / 2 / 900,000) = 0.55 % (the old 10 x 10 words repeated in a room of 12
about half the time). A repeat that does happen is told apart where names are shown (presence suffixes, see
docs/protocol.md). The words are short, everyday and inoffensive, each list without duplicates (a test holds it).
"""

from __future__ import annotations

import secrets

ADJECTIVES = (
    "Agile", "Amber", "Ample", "Apt", "Arctic", "Azure", "Bold", "Brave", "Breezy", "Bright",
    "Brisk", "Calm", "Candid", "Cheery", "Civil", "Clever", "Cosmic", "Cozy", "Crisp", "Curious",
    "Dapper", "Daring", "Deft", "Dreamy", "Eager", "Early", "Easy", "Epic", "Fair", "Fancy",
    "Fast", "Fearless", "Fleet", "Fluffy", "Frank", "Free", "Fresh", "Friendly", "Frosty", "Gentle",
    "Giddy", "Glad", "Golden", "Grand", "Happy", "Hardy", "Hazel", "Honest", "Humble", "Jolly",
    "Keen", "Kind", "Lively", "Loyal", "Lucky", "Lunar", "Mellow", "Merry", "Mighty", "Misty",
    "Modest", "Neat", "Nimble", "Noble", "Novel", "Olive", "Patient", "Peppy", "Plucky", "Polite",
    "Proud", "Quick", "Quiet", "Rapid", "Ready", "Regal", "Rosy", "Royal", "Rustic", "Sandy",
    "Savvy", "Serene", "Sharp", "Shiny", "Silver", "Sleek", "Smart", "Snowy", "Solar", "Spry",
    "Steady", "Sunny", "Swift", "Tidy", "Tranquil", "Trusty", "Velvet", "Vivid", "Warm", "Witty",
)  # fmt: skip

ANIMALS = (
    "Alpaca", "Antelope", "Badger", "Beaver", "Bison", "Bobcat", "Buffalo", "Camel", "Caribou", "Cheetah",
    "Chipmunk", "Cobra", "Condor", "Cougar", "Coyote", "Crane", "Cricket", "Dingo", "Dolphin", "Dove",
    "Eagle", "Egret", "Elk", "Falcon", "Ferret", "Finch", "Flamingo", "Fox", "Gazelle", "Gecko",
    "Gibbon", "Giraffe", "Goose", "Gopher", "Gorilla", "Hare", "Hawk", "Hedgehog", "Heron", "Hippo",
    "Hornet", "Husky", "Ibex", "Ibis", "Iguana", "Impala", "Jackal", "Jaguar", "Jay", "Kestrel",
    "Kiwi", "Koala", "Lemur", "Leopard", "Lion", "Llama", "Lobster", "Lynx", "Macaw", "Magpie",
    "Manatee", "Marmot", "Meerkat", "Mink", "Moose", "Narwhal", "Newt", "Ocelot", "Octopus", "Orca",
    "Osprey", "Otter", "Owl", "Panda", "Panther", "Parrot", "Pelican", "Penguin", "Puffin", "Puma",
    "Quail", "Rabbit", "Raccoon", "Raven", "Robin", "Salmon", "Seal", "Shark", "Sparrow", "Squid",
    "Stork", "Swan", "Tapir", "Tiger", "Toucan", "Turtle", "Walrus", "Weasel", "Wombat", "Zebra",
)  # fmt: skip

NUMBERS = range(10, 100)  # two digits: never a leading zero, never confused with a suffix like "(2)"


def guest_name() -> str:
    """A random guest name from the 900,000 above."""
    return f"{secrets.choice(ADJECTIVES)} {secrets.choice(ANIMALS)} {secrets.choice(NUMBERS)}"
