#!lua
-- Counts one request of an API key in its fixed one-second window, shared by every instance.
-- KEYS: 1 the key's counter (keys.ts rate)
-- ARGV: 1 requests allowed per window, 2 window length in ms
-- Returns: [1, 0] when allowed; [0, ms until the window ends] when over the limit
-- Emits: nothing
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
if count <= tonumber(ARGV[1]) then return { 1, 0 } end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  -- The window key lost its expiry (it cannot, short of a manual write): start a new window.
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  ttl = tonumber(ARGV[2])
end
return { 0, ttl }
