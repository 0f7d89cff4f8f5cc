"""The Lua scripts of the Redis broker: each runs atomically in one EVALSHA (keys of one slot on a Cluster)."""

from hub.store.redis import PUT_RECORD

# Publish to a recoverable channel: the next offset, the frame kept in the stream, and PUBLISH (SPUBLISH on a
# Cluster: ARGV[8]), atomically, so the stream's order and the pub/sub order are the same. A missing epoch
# (expired, or Redis lost its data) starts a new stream under a new epoch. KEYS: epoch, seq, stream, and the mid
# key when ARGV[9] (its TTL, ms) is not ''.
# The epoch's TTL is renewed by the GETEX that reads it (one command where GET and PEXPIRE were two; Redis 6.2).
PUBLISH = """
local epoch = redis.call('GETEX', KEYS[1], 'PX', ARGV[5])
if not epoch then
  epoch = ARGV[1]
  redis.call('SET', KEYS[1], epoch, 'PX', ARGV[5])
  redis.call('DEL', KEYS[2], KEYS[3])
end
local offset = redis.call('INCR', KEYS[2])
local frame = ARGV[2] .. offset .. ARGV[3]
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[4], offset .. '-1', 'f', frame)
redis.call('PEXPIRE', KEYS[2], ARGV[5])
redis.call('PEXPIRE', KEYS[3], ARGV[5])
redis.call(ARGV[8], ARGV[6], ARGV[7] .. '|' .. offset .. '|' .. epoch .. '|' .. frame)
if ARGV[9] ~= '' then
  redis.call('SET', KEYS[4], 'd', 'PX', ARGV[9])
end
return {offset, epoch}
"""

# The same, after putting a record of the store (hub/store/redis.py's PUT_RECORD: its keys and its key and value
# last in KEYS and ARGV), for a store on the same single Redis (its namespace is in another slot than the channel,
# so never on a Cluster). The put comes first: if it fails, the script stops before the event exists.
PUBLISH_STORED = PUT_RECORD + PUBLISH

# An event without history, after putting a record as above. KEYS: the mid key when ARGV[4] (its TTL, ms) is not
# '', then the record's. ARGV: PUBLISH, the pub/sub name, the payload, the mid's TTL or '', the record's key, value.
PUBLISH_UNSEQUENCED_STORED = (
    PUT_RECORD
    + """
redis.call(ARGV[1], ARGV[2], ARGV[3])
if ARGV[4] ~= '' then
  redis.call('SET', KEYS[1], 'd', 'PX', ARGV[4])
end
return 1
"""
)

# The current (epoch, offset) of a stream, creating the epoch when there is none.
POSITION = """
local epoch = redis.call('GET', KEYS[1])
if not epoch then
  epoch = ARGV[1]
  redis.call('SET', KEYS[1], epoch, 'PX', ARGV[2])
  redis.call('DEL', KEYS[2], KEYS[3])
end
local offset = redis.call('GET', KEYS[2])
return {epoch, offset or '0'}
"""

# A lease: take it when free, extend it when ARGV[1] holds it. KEYS: the lease. ARGV: owner, ttl (ms).
LEASE_ACQUIRE = """
local owner = redis.call('GET', KEYS[1])
if owner == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if not owner then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""
LEASE_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

# A publish's mid: claimed ("p", pending, for ARGV[1] ms) unless a claim or a done mark ("d") is there.
# Returns 1 when claimed, else what is there ("p" or "d"; false if it expired between the two calls).
CLAIM_MID = """
if redis.call('SET', KEYS[1], 'p', 'NX', 'PX', ARGV[1]) then
  return 1
end
return redis.call('GET', KEYS[1])
"""


# Presence as scripts (one EVALSHA, atomic; a MULTI pipeline costs several times more CPU on redis-py's cluster
# client). KEYS: the member hash (client -> member JSON), the expiry sorted set (client by expiry, ms since the
# epoch), the id sorted set (every client at score 0: pages in client id order, by ZRANGEBYLEX; HSCAN cannot
# bound a page of a small hash, which Redis keeps as a listpack and scans whole whatever its COUNT).
# A member whose expiry passed (its node died) is no longer counted or listed, though it stays in the keys until
# a node that follows the channel removes and announces it (EXPIRE_MEMBER).
# JOIN ARGV: client id, member JSON, expiry, key TTL (ms), now. LEAVE ARGV: client id, now.
# Both return the channel's member count after the change, read in the same round trip.
JOIN = """
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
redis.call('ZADD', KEYS[3], 0, ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
redis.call('PEXPIRE', KEYS[3], ARGV[4])
return redis.call('ZCOUNT', KEYS[2], ARGV[5], '+inf')
"""
LEAVE = """
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
return redis.call('ZCOUNT', KEYS[2], ARGV[2], '+inf')
"""

# Remove a member whose expiry passed. ARGV: client id, now. Returns its member JSON if this call removed it (so
# exactly one node announces the departure), else false: gone already, or refreshed since.
EXPIRE_MEMBER = """
local expiry = redis.call('ZSCORE', KEYS[2], ARGV[1])
if not expiry or tonumber(expiry) >= tonumber(ARGV[2]) then
  return false
end
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
local member = redis.call('HGET', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[1], ARGV[1])
return member
"""

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


# The node registry (hub/broker/redis_nodes.py). KEYS: the record hash (node id -> its record), the last-seen sorted
# set (node id by last refresh, ms since the epoch); both under one hash tag. NODE_REFRESH ARGV: node id, record,
# now, the oldest live last-seen (now - TTL), the keys' TTL (ms). It also forgets the nodes that stopped refreshing,
# a bounded batch at a time. NODES_LIVE ARGV: the oldest live last-seen; returns {id, last seen, record, ...}.
NODE_REFRESH = """
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
local gone = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[4], 'LIMIT', 0, 100)
if #gone > 0 then
  redis.call('HDEL', KEYS[1], unpack(gone))
  redis.call('ZREM', KEYS[2], unpack(gone))
end
redis.call('PEXPIRE', KEYS[1], ARGV[5])
redis.call('PEXPIRE', KEYS[2], ARGV[5])
return 1
"""
NODES_LIVE = """
local seen = redis.call('ZRANGEBYSCORE', KEYS[2], ARGV[1], '+inf', 'WITHSCORES', 'LIMIT', 0, 1000)
local found = {}
for i = 1, #seen, 2 do
  local record = redis.call('HGET', KEYS[1], seen[i])
  if record then
    found[#found + 1] = seen[i]
    found[#found + 1] = seen[i + 1]
    found[#found + 1] = record
  end
end
return found
"""
