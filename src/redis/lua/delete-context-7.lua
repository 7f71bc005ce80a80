-- Deletes a context's document, history, allocations and locks. The feed and the counters of
-- seqs, allocation numbers and lock tokens stay, so that a context created again under the same
-- id continues them (no seq gap, no reused allocation id, no smaller fencing token). Emits DELETED.
-- KEYS: 1 meta, 2 seq, 3 snapshots, 4 feed, 5 op, 6 limits, 7 policy
-- ARGV: 1 opId ('' = none), 2 fingerprint, 3 expected version ('' = none), 4 actor, 5 reason,
--       6 now (ISO), 7 feed retention, 8 opId TTL seconds, 9 channel, 10 context id
-- Returns: ok {version, seq} | NOT_FOUND | VERSION_CONFLICT {currentVersion} | VALIDATION_FAILED
-- Emits: DELETED
local op_id, fingerprint = ARGV[1], ARGV[2]
if op_id ~= '' then
  local previous = recorded_reply(KEYS[5], fingerprint)
  if previous then return previous end
end
local current = tonumber(redis.call('HGET', KEYS[1], 'version'))
if not current then
  return reply_error('NOT_FOUND', 'context ' .. ARGV[10] .. ' does not exist', { id = ARGV[10] })
end
if ARGV[3] ~= '' and tonumber(ARGV[3]) ~= current then
  return reply_error('VERSION_CONFLICT', 'expected version ' .. ARGV[3] .. ' but the context is at ' .. current,
    { currentVersion = current })
end

redis.call('DEL', KEYS[1], KEYS[3], KEYS[6], KEYS[7])
local base = string.sub(KEYS[1], 1, -6)
for _, n in ipairs(redis.call('ZRANGE', base .. ':allocs', 0, -1)) do
  redis.call('DEL', base .. ':alloc:' .. n, base .. ':children:' .. n)
end
for _, name in ipairs(redis.call('SMEMBERS', base .. ':locks')) do redis.call('DEL', base .. ':lock:' .. name) end
redis.call('DEL', base .. ':root', base .. ':children:root', base .. ':leases', base .. ':allocs', base .. ':locks')
local seq = append_change(KEYS[2], KEYS[4], ARGV[7], ARGV[9], ARGV[10], {
  'kind', 'DELETED', 'version', current, 'paths', '[""]', 'patch', '[]', 'actor', ARGV[4],
  'reason', ARGV[5], 'at', ARGV[6] })
local reply = cjson.encode({ ok = true, version = current, seq = seq })
if op_id ~= '' then record_reply(KEYS[5], fingerprint, reply, ARGV[8]) end
return reply
