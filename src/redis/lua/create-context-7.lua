-- Creates a context at version 1 and emits CREATED.
-- KEYS: 1 meta, 2 seq, 3 snapshots, 4 feed, 5 op (the opId's record), 6 limits, 7 policy
-- ARGV: 1 opId ('' = none), 2 fingerprint, 3 document JSON, 4 actor, 5 reason, 6 now (ISO),
--       7 feed retention, 8 opId TTL seconds, 9 channel, 10 context id, 11 paths JSON, 12 patch JSON,
--       13 head token (unique per write; names this version), 14 limits, 15 policy (flat settings)
-- Returns: ok {version, seq, createdAt} | ALREADY_EXISTS | VALIDATION_FAILED (opId reuse)
-- Emits: CREATED
local op_id, fingerprint = ARGV[1], ARGV[2]
if op_id ~= '' then
  local previous = recorded_reply(KEYS[5], fingerprint)
  if previous then return previous end
end
if redis.call('EXISTS', KEYS[1]) == 1 then
  return reply_error('ALREADY_EXISTS', 'context ' .. ARGV[10] .. ' already exists', { id = ARGV[10] })
end

local now, actor = ARGV[6], ARGV[4]
redis.call('HSET', KEYS[1], 'doc', ARGV[3], 'version', 1, 'head', ARGV[13], 'createdAt', now, 'updatedAt', now,
  'updatedBy', actor, 'oldestSnapshot', 1)
redis.call('HSET', KEYS[3], 1, ARGV[3])
store_settings(KEYS[6], ARGV[14])
store_settings(KEYS[7], ARGV[15])
local seq = append_change(KEYS[2], KEYS[4], ARGV[7], ARGV[9], ARGV[10], {
  'kind', 'CREATED', 'version', 1, 'paths', ARGV[11], 'patch', ARGV[12], 'actor', actor,
  'reason', ARGV[5], 'at', now })
local reply = cjson.encode({ ok = true, version = 1, seq = seq, createdAt = now, updatedAt = now, updatedBy = actor })
if op_id ~= '' then record_reply(KEYS[5], fingerprint, reply, ARGV[8]) end
return reply
