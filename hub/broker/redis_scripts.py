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


# Presence's scripts are in hub/broker/redis_presence_scripts.py.


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
