-- The delete script as it was before deletion in steps (git c57dd18~1), kept as the benchmark's baseline:
-- one script that deletes every allocation and lock of the context (bench/deletion.ts runs it with the prelude).
-- Deletes a context's document, history, allocations and locks. The feed and the counters of
-- seqs, allocation numbers and lock tokens stay, so that a context created again under the same
-- id continues them (no seq gap, no reused allocation id, no smaller fencing token). Emits DELETED.
-- KEYS: 1 meta, 2 seq, 3 snapshots, 4 feed, 5 op, 6 limits, 7 policy
-- ARGV: 1 fingerprint, 2 expected version ('' = none), 3 actor, 4 reason,
--       5 now (ISO), 6 feed retention, 7 seconds to keep the opId's record, 8 channel, 9 context id,
--       10 the key base (keys.ts contextBase), checked to carry KEYS[1]'s hash tag: the script
--       builds the ledger's keys from it (_2-ledger.lua lists them) to delete them
-- Returns: ok {version, seq} | NOT_FOUND | VERSION_CONFLICT {currentVersion} | VALIDATION_FAILED
-- Emits: DELETED
check_key_base(ARGV[10])
local previous = recorded_reply(KEYS[5], ARGV[1])
if previous then return previous end
local current = tonumber(redis.call('HGET', KEYS[1], 'version'))
if not current then
  return reply_error('NOT_FOUND', 'context ' .. ARGV[9] .. ' does not exist', { id = ARGV[9] })
end
if ARGV[2] ~= '' and tonumber(ARGV[2]) ~= current then
  return reply_error('VERSION_CONFLICT', 'expected version ' .. ARGV[2] .. ' but the context is at ' .. current,
    { currentVersion = current })
end

redis.call('DEL', KEYS[1], KEYS[3], KEYS[6], KEYS[7])
local base = ARGV[10]
for _, n in ipairs(redis.call('ZRANGE', base .. ':allocs', 0, -1)) do
  redis.call('DEL', base .. ':alloc:' .. n, base .. ':children:' .. n)
end
for _, name in ipairs(redis.call('SMEMBERS', base .. ':locks')) do redis.call('DEL', base .. ':lock:' .. name) end
redis.call('DEL', base .. ':root', base .. ':children:root', base .. ':leases', base .. ':releasing', base .. ':allocs', base .. ':locks')
local seq = append_change(KEYS[2], KEYS[4], ARGV[6], ARGV[8], ARGV[9], {
  'kind', 'DELETED', 'version', current, 'paths', '[""]', 'patch', '[]', 'actor', ARGV[3],
  'reason', ARGV[4], 'at', ARGV[5] })
local reply = cjson.encode({ ok = true, version = current, seq = seq })
record_reply(KEYS[5], ARGV[1], reply, ARGV[7])
return reply
