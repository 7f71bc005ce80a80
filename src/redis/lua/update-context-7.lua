-- Replaces a context's document with one the caller computed from the version whose head token
-- is `base head`, as the next version, keeping the last `history limit` snapshots. Head tokens
-- are unique per write, so a caller may send a write computed from a write it has not yet seen
-- acknowledged: if that one did not land, this one is told to retry instead of applying to a
-- different document of the same version number. Emits UPDATED or ROLLED_BACK.
-- KEYS: 1 meta, 2 seq, 3 snapshots, 4 feed, 5 op, 6 limits, 7 policy
-- ARGV: 1 opId ('' = none), 2 fingerprint, 3 base head token, 4 expected version ('' = none),
--       5 document JSON, 6 kind, 7 paths JSON, 8 patch JSON, 9 actor, 10 reason, 11 now (ISO),
--       12 history limit, 13 feed retention, 14 opId TTL seconds, 15 channel, 16 context id,
--       17 head token of the new version, 18 limits, 19 policy (flat settings, '-' = unchanged),
--       20 fence lock name ('' = no fence), 21 fence token
-- Returns: ok {version, seq, createdAt, updatedAt, updatedBy} | retry {currentVersion}
--          | NOT_FOUND | STALE_FENCE | VERSION_CONFLICT {currentVersion} | VALIDATION_FAILED (opId reuse)
-- Emits: the kind given (UPDATED or ROLLED_BACK)
local op_id, fingerprint = ARGV[1], ARGV[2]
if op_id ~= '' then
  local previous = recorded_reply(KEYS[5], fingerprint)
  if previous then return previous end
end
local meta = redis.call('HMGET', KEYS[1], 'version', 'createdAt', 'oldestSnapshot', 'head')
if not meta[1] then
  return reply_error('NOT_FOUND', 'context ' .. ARGV[16] .. ' does not exist', { id = ARGV[16] })
end
local current = tonumber(meta[1])
if ARGV[20] ~= '' then
  local base = string.sub(KEYS[1], 1, -6)
  local lock = redis.call('HMGET', base .. ':lock:' .. ARGV[20], 'token', 'expiresAt')
  if lock[1] ~= ARGV[21] or tonumber(lock[2]) <= now_ms() then
    return reply_error('STALE_FENCE', 'token ' .. ARGV[21] .. ' is not the current token of lock ' .. ARGV[20],
      { lock = ARGV[20], currentToken = tonumber(lock[1]) })
  end
end
if ARGV[4] ~= '' and tonumber(ARGV[4]) ~= current then
  return reply_error('VERSION_CONFLICT', 'expected version ' .. ARGV[4] .. ' but the context is at ' .. current,
    { currentVersion = current })
end
if ARGV[3] ~= meta[4] then
  return cjson.encode({ retry = true, currentVersion = current })
end

local version, now, actor = current + 1, ARGV[11], ARGV[9]
local oldest, keep_from = tonumber(meta[3]), version - tonumber(ARGV[12]) + 1
while oldest < keep_from do
  redis.call('HDEL', KEYS[3], oldest)
  oldest = oldest + 1
end
redis.call('HSET', KEYS[1], 'doc', ARGV[5], 'version', version, 'head', ARGV[17], 'updatedAt', now,
  'updatedBy', actor, 'oldestSnapshot', oldest)
redis.call('HSET', KEYS[3], version, ARGV[5])
store_settings(KEYS[6], ARGV[18])
store_settings(KEYS[7], ARGV[19])
local seq = append_change(KEYS[2], KEYS[4], ARGV[13], ARGV[15], ARGV[16], {
  'kind', ARGV[6], 'version', version, 'paths', ARGV[7], 'patch', ARGV[8], 'actor', actor,
  'reason', ARGV[10], 'at', now })
local reply = cjson.encode({ ok = true, version = version, seq = seq, createdAt = meta[2], updatedAt = now,
  updatedBy = actor })
if op_id ~= '' then record_reply(KEYS[5], fingerprint, reply, ARGV[14]) end
return reply
