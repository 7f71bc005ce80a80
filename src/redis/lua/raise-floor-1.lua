#!lua
-- Raises the counter floor of a deleted context's index shard to at least its last seq (never lowers it).
-- KEYS: 1 the counterFloor of the context's index shard (keys.ts IndexKeys)
-- ARGV: 1 the seq
-- Returns: the floor after the raise (integer)
-- Emits: nothing
local floor = tonumber(redis.call('GET', KEYS[1]) or '0')
local seq = tonumber(ARGV[1])
if seq > floor then
  redis.call('SET', KEYS[1], ARGV[1])
  return seq
end
return floor
