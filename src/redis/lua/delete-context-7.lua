#!lua
-- Deletes a context: its document, history, limits and policy at once, and emits DELETED. From
-- then on every ledger script answers NOT_FOUND (its meta is gone), so its allocations and locks
-- are ended; their keys, and the ledger's read indexes, are removed afterwards in bounded steps
-- by purge-step-2.lua, which the tombstone written here drives. The feed and the counters of
-- seqs, allocation numbers and lock tokens stay for the deleted-context retention, so that a
-- context created again under the same id within it continues them; after it they are pruned.
-- KEYS: 1 meta, 2 seq, 3 snapshots, 4 feed, 5 op, 6 limits, 7 policy
-- ARGV: 1 fingerprint, 2 expected version ('' = none), 3 actor, 4 reason,
--       5 now (ISO), 6 feed retention, 7 seconds to keep the opId's record, 8 channel, 9 context id,
--       10 the key base (keys.ts contextBase), checked to carry KEYS[1]'s hash tag: the script
--       builds the tombstone's key from it (<base>:tomb, keys.ts tombstone)
-- Returns: ok {version, seq} | NOT_FOUND | VERSION_CONFLICT {currentVersion} | VALIDATION_FAILED
-- Bounded: the snapshots are at most SWARM_HISTORY_LIMIT (UNLINK frees large values off the
-- main thread); the ledger's keys are left to purge-step-2.lua.
-- Emits: DELETED
check_key_base(ARGV[10])
local previous = replayed_reply(KEYS[5], ARGV[1])
if previous then return previous end
local current = tonumber(redis.call('HGET', KEYS[1], 'version'))
if not current then
  return reply_error('NOT_FOUND', 'context ' .. ARGV[9] .. ' does not exist', { id = ARGV[9] })
end
if ARGV[2] ~= '' and tonumber(ARGV[2]) ~= current then
  return reply_error('VERSION_CONFLICT', 'expected version ' .. ARGV[2] .. ' but the context is at ' .. current,
    { currentVersion = current })
end

redis.call('UNLINK', KEYS[1], KEYS[3], KEYS[6], KEYS[7])
local seq = append_change(KEYS[2], KEYS[4], ARGV[6], ARGV[8], ARGV[9], {
  'kind', 'DELETED', 'version', current, 'paths', '[""]', 'patch', '[]', 'actor', ARGV[3],
  'reason', ARGV[4], 'at', ARGV[5] })
local tomb = ARGV[10] .. ':tomb'
redis.call('DEL', tomb)
redis.call('HSET', tomb, 'seq', seq, 'deletedAt', int(now_ms()), 'purge', '1')
local reply = cjson.encode({ ok = true, version = current, seq = seq })
record_reply(KEYS[5], ARGV[1], reply, ARGV[7])
return reply
