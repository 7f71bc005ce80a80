#!lua
-- Releases a held lock, for the holder of its current token only. The token counter stays.
-- KEYS 1-9 and ARGV 1-8: see _2-ledger.lua. ARGV: 9 name, 10 token
-- Returns: ok {lock} | NOT_FOUND | STALE_FENCE (token not current, or its lease ran out)
-- A refusal writes nothing.
-- Emits: EXPIRED and RELEASED for its step of due ends (_2-ledger.lua end_planned), then LOCK_RELEASED
local ctx, early = ledger_begin()
if not ctx then return early end
local name = ARGV[9]
local lock_key = ctx.base .. ':lock:' .. name
local lock = redis.call('HMGET', lock_key, 'holder', 'token', 'expiresAt')
if not lock[1] or lock[2] ~= ARGV[10] or tonumber(lock[3]) <= ctx.now then
  return reply_error('STALE_FENCE', 'token ' .. ARGV[10] .. ' does not hold lock ' .. name, { lock = name })
end
end_planned(ctx)
redis.call('DEL', lock_key)
redis.call('SREM', ctx.base .. ':locks', name)
local json = lock_json(name, lock[1], lock[2], lock[3])
ledger_change(ctx, 'LOCK_RELEASED', 'lock', json)
return ledger_done('{"ok":true,"lock":' .. json .. '}')
