#!lua flags=no-writes
-- Reads a context's change feed, oldest first (or newest first, ARGV[6]): at most ARGV[2]
-- entries, and past the first only while their sizes (the lengths of their fields and values,
-- summed) stay within ARGV[3] bytes in all, so that a reader takes in what it has room for rather
-- than a run of large entries. Each XRANGE (XREVRANGE) inside asks for no more entries than the
-- room left would hold at the largest an entry can be, plus one, so the script holds at most one
-- entry beyond what it returns.
-- KEYS: 1 feed (stream)
-- ARGV: 1 start (oldest first: '-' or '(<seq>-0'; newest first: '+' or '(<seq>-0'), 2 most entries,
--       3 most bytes, 4 most entries per XRANGE inside, 5 about the largest an entry can be, in
--       bytes, 6 direction ('rev': newest first; anything else: oldest first)
-- Returns: the entries as XRANGE returns them, {{id, {field, value, ...}}, ...}, in reading order
-- Emits: nothing
local limit, budget, chunk, largest = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local command, stop = 'XRANGE', '+'
if ARGV[6] == 'rev' then command, stop = 'XREVRANGE', '-' end
local out, bytes, start = {}, 0, ARGV[1]
while #out < limit do
  local want = math.max(1, math.min(limit - #out, chunk, math.floor((budget - bytes) / largest) + 1))
  local entries = redis.call(command, KEYS[1], start, stop, 'COUNT', want)
  for _, entry in ipairs(entries) do
    local size = 0
    for _, s in ipairs(entry[2]) do size = size + #s end
    if #out > 0 and bytes + size > budget then return out end
    bytes = bytes + size
    out[#out + 1] = entry
  end
  if #entries < want then break end
  start = '(' .. entries[#entries][1]
end
return out
