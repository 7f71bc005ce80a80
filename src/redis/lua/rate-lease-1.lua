#!lua
-- Leases requests of an API key's fixed window, shared by every instance. The window's count
-- holds only requests that were admitted: those taken by this call, and those an instance admitted
-- from its previous lease and reports now. A lease is not counted until it is reported: an
-- instance admits up to `lease` more requests on its own, within the window, and reports them on
-- its next call. So a key is refused only once its count has reached the limit, and each other
-- instance can admit at most its lease beyond it (docs/decisions/rate-limiter.md). A lease is at
-- most half of what the window has left, so that two instances leasing at once stay within it.
-- KEYS: 1 the key's window (keys.ts rate): hash of start (Redis ms when the window began), count
-- ARGV: 1 requests allowed per window, 2 window length in ms, 3 the window the report belongs to
--       (its start as this script returned it; '' for none), 4 requests admitted from the
--       caller's lease of that window, unreported, 5 requests waiting now, to take (>= 1),
--       6 the largest lease wanted (>= 0)
-- Returns: [taken, ms until the window ends, window start, lease]: the first `taken` waiting
--   requests are admitted (and counted); taken < waiting means the window is full (the rest are
--   over the limit, and so is every request until the window ends). A report for another window
--   (one that ended) is dropped: its requests were admitted in that window.
-- Emits: nothing
local limit = tonumber(ARGV[1])
local window_ms = tonumber(ARGV[2])
local start = redis.call('HGET', KEYS[1], 'start')
local ttl = redis.call('PTTL', KEYS[1])
local count
local fresh = not start or ttl < 0
if fresh then
  -- No window (or one that lost its expiry, which it cannot short of a manual write): begin one.
  start = int(now_ms())
  ttl = window_ms
  count = 0
else
  count = tonumber(redis.call('HGET', KEYS[1], 'count'))
end
local before = count
if ARGV[3] == start then count = count + tonumber(ARGV[4]) end
local taken = math.max(0, math.min(tonumber(ARGV[5]), limit - count))
count = count + taken
local lease = math.max(0, math.min(tonumber(ARGV[6]), math.ceil((limit - count) / 2)))
if fresh then
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[1], 'start', start, 'count', count)
  redis.call('PEXPIRE', KEYS[1], window_ms)
elseif count ~= before then
  redis.call('HSET', KEYS[1], 'count', count)
end
return { taken, ttl, start, lease }
