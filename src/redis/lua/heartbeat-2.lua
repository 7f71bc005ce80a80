#!lua
-- Records that a server instance runs (or, with mode 'stop', that it stopped), with Redis's clock,
-- and prunes instances whose heartbeat is older than the TTL: at most 100 per call, since each call
-- from any instance prunes, the entries left are those of instances that died since the last one.
-- KEYS: 1 instance hash (keys.ts instance(id)), 2 instance index (keys.ts instanceIndex)
-- ARGV: 1 instance id, 2 package version, 3 startedAt (ISO), 4 open subscriptions, 5 TTL in ms,
--       6 mode: 'beat' or 'stop'
-- Returns: the heartbeat's time in ms (Redis TIME)
-- Emits: nothing
check_key_base(KEYS[2])
local now = now_ms()
local ttl = tonumber(ARGV[5])
local stale = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', '(' .. (now - ttl), 'LIMIT', 0, 100)
if #stale > 0 then redis.call('ZREM', KEYS[2], unpack(stale)) end
if ARGV[6] == 'stop' then
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[2], ARGV[1])
  return now
end
redis.call('HSET', KEYS[1], 'id', ARGV[1], 'version', ARGV[2], 'startedAt', ARGV[3], 'heartbeat', now, 'subscriptions', ARGV[4])
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('ZADD', KEYS[2], now, ARGV[1])
return now
