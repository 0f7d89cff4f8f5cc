"""RedisPresence's Lua scripts: one EVALSHA per change, atomic (a MULTI pipeline costs several times more CPU on
redis-py's cluster client).

KEYS, in this order for every script: the member hash (client -> member JSON), the expiry sorted set (client by
expiry, ms since the epoch), the id sorted set (every client at score 0: pages in client id order, by
ZRANGEBYLEX; HSCAN cannot bound a page of a small hash, which Redis keeps as a listpack and scans whole whatever
its COUNT), and the room's name index (hub/broker/presence_names.py): the names hash (display -> the user shown
as it), the displays hash (user -> its display) and the refs hash (user -> how many of its members are here).
All six share the channel's hash tag.

A member whose expiry passed (its node died) is no longer counted or listed, though it stays in the keys (and
keeps its display) until a node that follows the channel removes and announces it (EXPIRE_MEMBER).
"""

from __future__ import annotations

# One member of a user is gone: the user's display is free again once its last member is.
_RELEASE = """
local function release(user)
  if redis.call('HINCRBY', KEYS[6], user, -1) <= 0 then
    local display = redis.call('HGET', KEYS[5], user)
    redis.call('HDEL', KEYS[5], user)
    redis.call('HDEL', KEYS[6], user)
    if display and redis.call('HGET', KEYS[4], display) == user then
      redis.call('HDEL', KEYS[4], display)
    end
  end
end
"""

# ARGV: client id, user, name, the member's JSON without its opening brace and display ('"client":...}'),
# expiry, key TTL (ms), now, presence_names.PROBES. The display (the user's own if another of its members is
# here, else the name with a free suffix, by presence_names.display_name's rule) goes first in the stored JSON.
# Returns {the channel's member count after the join, read in the same round trip; the member's display}.
JOIN = """
local display
local present = redis.call('HGET', KEYS[1], ARGV[1])
if present then
  display = cjson.decode(present)['display'] or ARGV[3]  -- written back without it: the name
else
  display = redis.call('HGET', KEYS[5], ARGV[2])
  if display then
    redis.call('HINCRBY', KEYS[6], ARGV[2], 1)
  else
    display = ARGV[3]
    local suffix = 1
    local probes = tonumber(ARGV[8])
    while redis.call('HEXISTS', KEYS[4], display) == 1 do
      suffix = suffix + 1
      if suffix == probes + 2 then  -- the first suffixes are taken: go above the room's size
        suffix = math.max(redis.call('ZCARD', KEYS[3]) + 1, probes + 2)
      end
      display = ARGV[3] .. ' (' .. suffix .. ')'
    end
    redis.call('HSET', KEYS[4], display, ARGV[2])
    redis.call('HSET', KEYS[5], ARGV[2], display)
    redis.call('HSET', KEYS[6], ARGV[2], 1)
  end
end
redis.call('HSET', KEYS[1], ARGV[1], '{"display":' .. cjson.encode(display) .. ',' .. ARGV[4])
redis.call('ZADD', KEYS[2], ARGV[5], ARGV[1])
redis.call('ZADD', KEYS[3], 0, ARGV[1])
for i = 1, 6 do
  redis.call('PEXPIRE', KEYS[i], ARGV[6])
end
return {redis.call('ZCOUNT', KEYS[2], ARGV[7], '+inf'), display}
"""

# ARGV: client id, now. Returns {the member count after the leave; the member's JSON, or false if it was not here}.
LEAVE = (
    _RELEASE
    + """
local member = redis.call('HGET', KEYS[1], ARGV[1])
if member then
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('ZREM', KEYS[2], ARGV[1])
  redis.call('ZREM', KEYS[3], ARGV[1])
  release(cjson.decode(member)['user'])
end
return {redis.call('ZCOUNT', KEYS[2], ARGV[2], '+inf'), member}
"""
)

# ARGV: client id, the member's new JSON, now. Replaces a member's JSON (its metadata changed) if it is here.
# Returns the member count.
UPDATE = """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
end
return redis.call('ZCOUNT', KEYS[2], ARGV[3], '+inf')
"""

# A node's members, refreshed before they expire. ARGV: expiry, key TTL (ms), then client id, user, display,
# member JSON for each member. A member that is not in the hash any more (Redis lost its data, or the member left
# while the refresh was on its way; its node then removes it again) is written back with its display.
REFRESH = """
for i = 3, #ARGV, 4 do
  local client, user, display = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  if redis.call('HSET', KEYS[1], client, ARGV[i + 3]) == 1 then
    if redis.call('HSETNX', KEYS[5], user, display) == 1 then
      redis.call('HSET', KEYS[6], user, 1)
    else
      redis.call('HINCRBY', KEYS[6], user, 1)
    end
    redis.call('HSETNX', KEYS[4], display, user)
  end
  redis.call('ZADD', KEYS[2], ARGV[1], client)
  redis.call('ZADD', KEYS[3], 0, client)
end
for i = 1, 6 do
  redis.call('PEXPIRE', KEYS[i], ARGV[2])
end
return 1
"""

# Remove a member whose expiry passed. ARGV: client id, now. Returns its member JSON if this call removed it (so
# exactly one node announces the departure), else false: gone already, or refreshed since.
EXPIRE_MEMBER = (
    _RELEASE
    + """
local expiry = redis.call('ZSCORE', KEYS[2], ARGV[1])
if not expiry or tonumber(expiry) >= tonumber(ARGV[2]) then
  return false
end
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
local member = redis.call('HGET', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[1], ARGV[1])
if member then
  release(cjson.decode(member)['user'])
end
return member
"""
)

# One page of members in client id order. ARGV: where the page starts (a ZRANGEBYLEX bound: "-", or "(" and the
# last client id of the page before), the most members, now. Returns {the last client id looked at if more follow,
# else false; the JSON of the members among them, false for one without a live member (it left between the calls,
# or it expired)}. Expired members are rare (a node died, and no node removed them yet): while the channel has
# none, no expiry is looked up. HMGET in chunks: Lua's unpack fails past a few thousand values.
PAGE = """
local limit = tonumber(ARGV[2])
local clients = redis.call('ZRANGEBYLEX', KEYS[3], ARGV[1], '+', 'LIMIT', 0, limit + 1)
local next_cursor = false
if #clients > limit then
  clients[#clients] = nil
  next_cursor = clients[#clients]
end
if #clients == 0 then
  return {next_cursor, {}}
end
local members
if #clients <= 1000 then
  members = redis.call('HMGET', KEYS[1], unpack(clients))
else
  members = {}
  for first = 1, #clients, 1000 do
    local chunk = redis.call('HMGET', KEYS[1], unpack(clients, first, math.min(first + 999, #clients)))
    for i = 1, #chunk do
      members[#members + 1] = chunk[i]
    end
  end
end
if redis.call('ZCOUNT', KEYS[2], '-inf', '(' .. ARGV[3]) > 0 then
  local now = tonumber(ARGV[3])
  for i, client in ipairs(clients) do
    local expiry = redis.call('ZSCORE', KEYS[2], client)
    if not expiry or tonumber(expiry) < now then
      members[i] = false
    end
  end
end
return {next_cursor, members}
"""
