#!lua
-- Creates a context at version 1 and emits CREATED. Where the id's seq counter is left from a
-- deleted context (within the deleted-context retention) its counters go on; where there is none
-- (a new id, or a pruned one) they start at the counter floor F: the first seq, allocation
-- number and lock token are F + 1 (F is kept in meta `floor` for lock names used later), so no
-- cursor, allocation id or fencing token of an earlier context of the id matches this one. F
-- must have been read at most the given age ago (a quarter of the retention: a prune runs at
-- least half a retention after the floor covered it, purge-step-2.lua, so a read that recent saw
-- it): an older read is answered pending.
-- KEYS: 1 meta, 2 seq, 3 snapshots, 4 feed, 5 op (the opId's record), 6 limits, 7 policy
-- ARGV: 1 fingerprint, 2 the document's member order (_1-common.lua document_json), 3 actor, 4 reason, 5 now (ISO),
--       6 feed retention, 7 seconds to keep the opId's record, 8 channel, 9 context id, 10 paths JSON, 11 patch JSON,
--       12 head token (unique per write; names this version), 13 limits, 14 policy (flat settings),
--       15 dry run ('1': check everything, write nothing, record nothing, answer as the write would),
--       16 the key base (keys.ts contextBase), checked to carry KEYS[1]'s hash tag: the script
--       builds <base>:tomb and <base>:allocCount from it, 17 the counter floor F, 18 when F was
--       read (ms, Redis time), 19 the oldest a read of F may be (ms), 20... the document's members:
--       name JSON, value JSON, ... (_1-common.lua write_members)
-- Returns: ok {version, seq, createdAt} (dry run: also dryRun = true) | ALREADY_EXISTS
--          | VALIDATION_FAILED (opId reuse) | pending (a deletion of the id is still being purged
--          or pruned, or F was read too long ago: finish it, read F again and call again; nothing
--          was written)
-- Emits: CREATED; nothing on a dry run
local previous = replayed_reply(KEYS[5], ARGV[1])
if previous then return previous end
if redis.call('EXISTS', KEYS[1]) == 1 then
  return reply_error('ALREADY_EXISTS', 'context ' .. ARGV[9] .. ' already exists', { id = ARGV[9] })
end

check_key_base(ARGV[16])
local tomb = ARGV[16] .. ':tomb'
local left = redis.call('HMGET', tomb, 'purge', 'pruning')
if left[1] or left[2] then return '{"pending":true}' end
-- The counters continue where they are, or start at the floor where there are none.
local floor = nil
if redis.call('EXISTS', KEYS[2]) == 0 then
  if now_ms() - tonumber(ARGV[18]) > tonumber(ARGV[19]) then return '{"pending":true}' end
  floor = tonumber(ARGV[17])
end

local now, actor = ARGV[5], ARGV[3]
if ARGV[15] == '1' then
  local last = floor or tonumber(redis.call('GET', KEYS[2])) or 0
  return cjson.encode({ ok = true, dryRun = true, version = 1, seq = last + 1, createdAt = now, updatedAt = now,
    updatedBy = actor })
end
redis.call('DEL', tomb)
if floor and floor > 0 then
  redis.call('SET', KEYS[2], int(floor))
  redis.call('SET', ARGV[16] .. ':allocCount', int(floor))
end
redis.call('HSET', KEYS[1], 'version', 1, 'head', ARGV[12], 'createdAt', now, 'updatedAt', now,
  'updatedBy', actor, 'oldestSnapshot', 1)
if floor and floor > 0 then redis.call('HSET', KEYS[1], 'floor', int(floor)) end
write_members(KEYS[1], nil, 1, 20, ARGV[2])
store_settings(KEYS[6], ARGV[13])
store_settings(KEYS[7], ARGV[14])
local seq = append_change(KEYS[2], KEYS[4], ARGV[6], ARGV[8], ARGV[9], {
  'kind', 'CREATED', 'version', 1, 'paths', ARGV[10], 'patch', ARGV[11], 'actor', actor,
  'reason', ARGV[4], 'at', now })
local reply = cjson.encode({ ok = true, version = 1, seq = seq, createdAt = now, updatedAt = now, updatedBy = actor })
record_reply(KEYS[5], ARGV[1], reply, ARGV[7])
return reply
