#!lua
-- Changes a context's document to one the caller computed from the version whose head token is
-- `base head`, as the next version, writing only the top-level members that changed, and keeps
-- what it replaced for the last `history limit` versions (read-snapshot puts them together). Head tokens
-- are unique per write, so a caller may send a write computed from a write it has not yet seen
-- acknowledged: if that one did not land, this one is told to retry instead of applying to a
-- different document of the same version number. Emits UPDATED or ROLLED_BACK. A change that
-- leaves the document as it is (document JSON '') is checked alike but writes nothing, not even
-- a generated record (a resend of it is as harmless), and answers with the current version and seq.
-- KEYS: 1 meta, 2 seq, 3 snapshots, 4 feed, 5 op, 6 limits, 7 policy
-- ARGV: 1 fingerprint, 2 base head token, 3 expected version ('' = none),
--       4 '' = the document is unchanged, '=' = members change (from ARGV 23 on) in the same order,
--       'o' .. the new member order (see _1-common.lua document_json), 5 kind, 6 paths JSON, 7 patch JSON, 8 actor, 9 reason, 10 now (ISO),
--       11 history limit, 12 feed retention, 13 seconds to keep the opId's record, 14 channel, 15 context id,
--       16 head token of the new version, 17 limits, 18 policy (flat settings, '-' = unchanged),
--       19 fence lock name ('' = no fence), 20 fence token, 21 the fence lock's key (keys.ts
--       lock; '' = no fence), checked to carry KEYS[1]'s hash tag, 22 dry run ('1': check
--       everything, write nothing, record nothing, and answer with what the write would answer),
--       23... the changed members: name JSON, value JSON ('' = removed), ... (_1-common.lua write_members)
-- Returns: ok {version, seq, createdAt, updatedAt, updatedBy} (dry run: also dryRun = true) | retry {currentVersion}
--          | NOT_FOUND | STALE_FENCE | VERSION_CONFLICT {currentVersion} | VALIDATION_FAILED (opId reuse)
-- Emits: the kind given (UPDATED or ROLLED_BACK); nothing on a dry run
if ARGV[21] ~= '' then check_key_base(ARGV[21]) end
local previous = replayed_reply(KEYS[5], ARGV[1])
if previous then return previous end
local meta = redis.call('HMGET', KEYS[1], 'version', 'createdAt', 'oldestSnapshot', 'head', 'updatedAt', 'updatedBy')
if not meta[1] then
  return reply_error('NOT_FOUND', 'context ' .. ARGV[15] .. ' does not exist', { id = ARGV[15] })
end
local current = tonumber(meta[1])
if ARGV[19] ~= '' then
  local lock = redis.call('HMGET', ARGV[21], 'token', 'expiresAt')
  if lock[1] ~= ARGV[20] or tonumber(lock[2]) <= now_ms() then
    return reply_error('STALE_FENCE', 'token ' .. ARGV[20] .. ' is not the current token of lock ' .. ARGV[19],
      { lock = ARGV[19], currentToken = tonumber(lock[1]) })
  end
end
if ARGV[3] ~= '' and tonumber(ARGV[3]) ~= current then
  return reply_error('VERSION_CONFLICT', 'expected version ' .. ARGV[3] .. ' but the context is at ' .. current,
    { currentVersion = current })
end
if ARGV[2] ~= meta[4] then
  return cjson.encode({ retry = true, currentVersion = current })
end
local dry_run = ARGV[22] == '1'
if ARGV[4] == '' then
  local reply = cjson.encode({ ok = true, version = current, seq = tonumber(redis.call('GET', KEYS[2])),
    createdAt = meta[2], updatedAt = meta[5], updatedBy = meta[6], dryRun = dry_run or nil })
  if ARGV[1] ~= '' and not dry_run then record_reply(KEYS[5], ARGV[1], reply, ARGV[13]) end
  return reply
end

local version, now, actor = current + 1, ARGV[10], ARGV[8]
if dry_run then
  return cjson.encode({ ok = true, dryRun = true, version = version, seq = tonumber(redis.call('GET', KEYS[2])) + 1,
    createdAt = meta[2], updatedAt = now, updatedBy = actor })
end
-- Versions oldest..version stay retained: what a version replaced is kept while the one before it is.
local oldest, keep_from = tonumber(meta[3]), version - tonumber(ARGV[11]) + 1
while oldest < keep_from do
  oldest = oldest + 1
  drop_replaced(KEYS[3], oldest)
end
local order = nil
if ARGV[4] ~= '=' then order = string.sub(ARGV[4], 2) end
write_members(KEYS[1], version > oldest and KEYS[3] or nil, version, 23, order)
redis.call('HSET', KEYS[1], 'version', version, 'head', ARGV[16], 'updatedAt', now, 'updatedBy', actor,
  'oldestSnapshot', oldest)
store_settings(KEYS[6], ARGV[17])
store_settings(KEYS[7], ARGV[18])
local seq = append_change(KEYS[2], KEYS[4], ARGV[12], ARGV[14], ARGV[15], {
  'kind', ARGV[5], 'version', version, 'paths', ARGV[6], 'patch', ARGV[7], 'actor', actor,
  'reason', ARGV[9], 'at', now })
local reply = cjson.encode({ ok = true, version = version, seq = seq, createdAt = meta[2], updatedAt = now,
  updatedBy = actor })
record_reply(KEYS[5], ARGV[1], reply, ARGV[13])
return reply
