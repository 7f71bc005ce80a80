-- Extends a held lock's lease, for the holder of its current token only.
-- KEYS and ARGV 1-9: see _2-ledger.lua. ARGV: 10 name, 11 token, 12 leaseMs
-- Returns: ok {lock} | NOT_FOUND | STALE_FENCE (token not current, or its lease ran out)
-- Emits: EXPIRED for overdue leases
local ctx, early = ledger_begin()
if not ctx then return early end
local name = ARGV[10]
local lock_key = ctx.base .. ':lock:' .. name
local lock = redis.call('HMGET', lock_key, 'holder', 'token', 'expiresAt')
if not lock[1] or lock[2] ~= ARGV[11] or tonumber(lock[3]) <= ctx.now then
  return reply_error('STALE_FENCE', 'token ' .. ARGV[11] .. ' does not hold lock ' .. name, { lock = name })
end
local expires = int(ctx.now + tonumber(ARGV[12]))
redis.call('HSET', lock_key, 'expiresAt', expires)
return ledger_done('{"ok":true,"lock":' .. lock_json(name, lock[1], lock[2], expires) .. '}')
