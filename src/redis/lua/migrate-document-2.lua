#!lua
-- Moves a context written by an earlier version of the server (its whole document in meta field
-- 'doc', a full snapshot per retained version in `snapshots`) to the storage by top-level member
-- (_1-common.lua document_json, write_members): the caller split the document and turned the
-- snapshots into what each version replaced. Only if the context is still as the caller read it.
-- KEYS: 1 meta, 2 snapshots
-- ARGV: 1 head token the caller read, 2 member order, 3 oldest version the history now covers,
--       4 number of member arguments n, 5..4+n the members (name JSON, value JSON, ...),
--       the rest: the new `snapshots` hash as field, value, ...
-- Returns: 1 moved | 0 not moved (gone, changed since the read, or moved already)
-- Emits: nothing
local m = redis.call('HMGET', KEYS[1], 'head', 'doc')
if m[1] ~= ARGV[1] or not m[2] then return 0 end
local n = tonumber(ARGV[4])
redis.call('HDEL', KEYS[1], 'doc')
redis.call('HSET', KEYS[1], 'order', ARGV[2], 'oldestSnapshot', ARGV[3])
for i = 5, 4 + n, 2 do redis.call('HSET', KEYS[1], '.' .. ARGV[i], ARGV[i + 1]) end
redis.call('DEL', KEYS[2])
call_in_chunks('HSET', KEYS[2], ARGV, 5 + n)
return 1
