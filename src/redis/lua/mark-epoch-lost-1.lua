#!lua
-- Marks the deployment's state lost, unless the epoch changed since the caller read it (an admin
-- re-initialised it meanwhile, say), so that a re-initialisation is never overwritten.
-- KEYS: 1 the epoch (keys.ts epoch)
-- ARGV: 1 the epoch the caller read and judged lost ("" when there was none), 2 the lost mark
-- Returns: the epoch now stored: the lost mark, or what was written since, for the caller to judge
-- Emits: nothing
local current = redis.call('GET', KEYS[1])
if (current or '') ~= ARGV[1] then return current end
redis.call('SET', KEYS[1], ARGV[2])
return ARGV[2]
