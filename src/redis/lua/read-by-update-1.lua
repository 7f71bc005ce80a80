#!lua flags=no-writes
-- Reads a page of a contexts index by update time (keys.ts IndexKeys.byUpdate), newest first, after
-- a position (score, id): the order is score descending, then id descending (bytes), which is the
-- order ZRANGE ... REV gives. Read-only; one key, so legal on Redis Cluster.
-- KEYS: 1 the byUpdate index of one index shard
-- ARGV: 1 score of the position to start after ('' = start at the newest), 2 id of that position,
--       3 count (at most 1000 entries are returned)
-- Returns: flat list id, score, id, score, ... (at most `count` pairs)
-- Emits: nothing
-- Cost: O(log N) per step of a binary search over the entries that share the position's score
-- (at most 64 steps), then O(log N + count): never O(N), however deep the page.
local key = KEYS[1]
local count = math.min(tonumber(ARGV[3]), 1000)

-- Byte order, as Redis orders members of equal score (Lua's '<' follows the server's locale).
local function bytes_less(a, b)
  local n = math.min(#a, #b)
  for i = 1, n do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x < y end
  end
  return #a < #b
end

local start = 0
if ARGV[1] ~= '' then
  local score = ARGV[1]
  local above = redis.call('ZCOUNT', key, '(' .. score, '+inf')
  local group = redis.call('ZCOUNT', key, score, score)
  -- Among the entries of this score (ids descending), the first whose id is below the position's.
  local lo, hi = 0, group
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    local member = redis.call('ZRANGE', key, above + mid, above + mid, 'REV')[1]
    if member == nil or bytes_less(member, ARGV[2]) then hi = mid else lo = mid + 1 end
  end
  start = above + lo
end
if count < 1 then return {} end
return redis.call('ZRANGE', key, start, start + count - 1, 'REV', 'WITHSCORES')
