"""The Lua scripts of the Redis broker: each runs atomically in one EVALSHA (keys of one slot on a Cluster)."""

# Publish to a recoverable channel: the next offset, the frame kept in the stream, and PUBLISH (SPUBLISH on a
# Cluster: ARGV[8]), atomically,
# so the stream's order and the pub/sub order are the same. A missing epoch (expired, or Redis lost its
# data) starts a new stream under a new epoch.
PUBLISH = """
local epoch = redis.call('GET', KEYS[1])
if not epoch then
  epoch = ARGV[1]
  redis.call('SET', KEYS[1], epoch)
  redis.call('DEL', KEYS[2], KEYS[3])
end
local offset = redis.call('INCR', KEYS[2])
local frame = ARGV[2] .. offset .. ARGV[3]
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[4], offset .. '-1', 'f', frame)
redis.call('PEXPIRE', KEYS[1], ARGV[5])
redis.call('PEXPIRE', KEYS[2], ARGV[5])
redis.call('PEXPIRE', KEYS[3], ARGV[5])
redis.call(ARGV[8], ARGV[6], ARGV[7] .. '|' .. offset .. '|' .. epoch .. '|' .. frame)
if KEYS[4] then
  redis.call('SET', KEYS[4], 'd', 'PX', ARGV[9])
end
return {offset, epoch}
"""

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


# Presence join and leave as scripts (one EVALSHA, atomic; a MULTI pipeline costs several times more CPU on
# redis-py's cluster client). KEYS: the member hash, the expiry sorted set.
# JOIN ARGV: client id, member JSON, expiry (ms since the epoch), key TTL (ms). LEAVE ARGV: client id.
JOIN = """
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
return 1
"""
LEAVE = """
redis.call('HDEL', KEYS[1], ARGV[1])
return redis.call('ZREM', KEYS[2], ARGV[1])
"""
