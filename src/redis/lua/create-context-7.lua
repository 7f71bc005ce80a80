-- Creates a context at version 1 and emits CREATED.
-- KEYS: 1 meta, 2 seq, 3 snapshots, 4 feed, 5 op (the opId's record), 6 limits, 7 policy
-- ARGV: 1 fingerprint, 2 document JSON, 3 actor, 4 reason, 5 now (ISO),
--       6 feed retention, 7 seconds to keep the opId's record, 8 channel, 9 context id, 10 paths JSON, 11 patch JSON,
--       12 head token (unique per write; names this version), 13 limits, 14 policy (flat settings),
--       15 dry run ('1': check everything, write nothing, record nothing, answer as the write would)
-- Returns: ok {version, seq, createdAt} (dry run: also dryRun = true) | ALREADY_EXISTS | VALIDATION_FAILED (opId reuse)
-- Emits: CREATED; nothing on a dry run
local previous = recorded_reply(KEYS[5], ARGV[1])
if previous then return previous end
if redis.call('EXISTS', KEYS[1]) == 1 then
  return reply_error('ALREADY_EXISTS', 'context ' .. ARGV[9] .. ' already exists', { id = ARGV[9] })
end

local now, actor = ARGV[5], ARGV[3]
if ARGV[15] == '1' then
  return cjson.encode({ ok = true, dryRun = true, version = 1, seq = (tonumber(redis.call('GET', KEYS[2])) or 0) + 1,
    createdAt = now, updatedAt = now, updatedBy = actor })
end
redis.call('HSET', KEYS[1], 'doc', ARGV[2], 'version', 1, 'head', ARGV[12], 'createdAt', now, 'updatedAt', now,
  'updatedBy', actor, 'oldestSnapshot', 1)
redis.call('HSET', KEYS[3], 1, ARGV[2])
store_settings(KEYS[6], ARGV[13])
store_settings(KEYS[7], ARGV[14])
local seq = append_change(KEYS[2], KEYS[4], ARGV[6], ARGV[8], ARGV[9], {
  'kind', 'CREATED', 'version', 1, 'paths', ARGV[10], 'patch', ARGV[11], 'actor', actor,
  'reason', ARGV[4], 'at', now })
local reply = cjson.encode({ ok = true, version = 1, seq = seq, createdAt = now, updatedAt = now, updatedBy = actor })
record_reply(KEYS[5], ARGV[1], reply, ARGV[7])
return reply
