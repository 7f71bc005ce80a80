#!lua flags=no-writes
-- Reads the document of a retained version: the current members, with what each later version
-- replaced put back (the first such version after it holds a member's value as of it), in the
-- order of then (_1-common.lua write_members). Costs one small read per version in between (at
-- most SWARM_HISTORY_LIMIT) and one per member they changed.
-- KEYS: 1 meta, 2 snapshots
-- ARGV: 1 version
-- Returns: [current version|false, oldest retained version, document JSON|false (not retained)]
-- Emits: nothing
local m = redis.call('HMGET', KEYS[1], 'version', 'oldestSnapshot', 'order')
if not m[1] then return { false, false, false } end
local current, oldest, version = tonumber(m[1]), tonumber(m[2]), tonumber(ARGV[1])
if version == nil or version < oldest or version > current then return { current, oldest, false } end
local known, order = {}, nil
for later = version + 1, current do
  local names = redis.call('HGET', KEYS[2], later) or ''
  for name in string.gmatch(names, '[^\n]+') do
    if known[name] == nil then known[name] = redis.call('HGET', KEYS[2], later .. '.' .. name) or false end
  end
  if order == nil then order = redis.call('HGET', KEYS[2], later .. 'o') or nil end
end
return { current, oldest, document_json(KEYS[1], order or m[3], known) }
