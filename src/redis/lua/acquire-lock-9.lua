#!lua
-- Acquires a named lock with a lease and a fencing token strictly greater than any earlier
-- token of that name. A lock whose lease ran out is released first (LOCK_RELEASED).
-- KEYS 1-9 and ARGV 1-8: see _2-ledger.lua. ARGV: 9 name, 10 holder, 11 leaseMs
-- Returns: ok {lock} | NOT_FOUND | LOCK_HELD {holder, expiresAt (ISO)}
-- A refusal writes nothing.
-- Emits: EXPIRED and RELEASED for its step of due ends (_2-ledger.lua end_planned), LOCK_RELEASED
--        for an ended lease, then LOCK_ACQUIRED
local ctx, early = ledger_begin()
if not ctx then return early end
local name = ARGV[9]
local lock_key = ctx.base .. ':lock:' .. name
local lock = redis.call('HMGET', lock_key, 'holder', 'token', 'expiresAt')
if lock[1] and tonumber(lock[3]) > ctx.now then
  return reply_error('LOCK_HELD', 'lock ' .. name .. ' is held by ' .. lock[1], { holder = lock[1], expiresAt = iso(tonumber(lock[3])) })
end
end_planned(ctx)
if lock[1] then
  redis.call('DEL', lock_key)
  redis.call('SREM', ctx.base .. ':locks', name)
  ledger_change(ctx, 'LOCK_RELEASED', 'lock', lock_json(name, lock[1], lock[2], lock[3]))
end
-- A name's first token counter starts at the context's counter floor (create-context-7.lua).
local token_key = ctx.base .. ':lockToken:' .. name
if redis.call('EXISTS', token_key) == 0 then
  local floor = redis.call('HGET', KEYS[1], 'floor')
  if floor then redis.call('SET', token_key, floor) end
end
redis.call('SADD', ctx.base .. ':lockNames', name)
local token = redis.call('INCR', token_key)
local expires = int(ctx.now + tonumber(ARGV[11]))
redis.call('HSET', lock_key, 'holder', ARGV[10], 'token', token, 'expiresAt', expires)
redis.call('SADD', ctx.base .. ':locks', name)
local json = lock_json(name, ARGV[10], token, expires)
ledger_change(ctx, 'LOCK_ACQUIRED', 'lock', json)
return ledger_done('{"ok":true,"lock":' .. json .. '}')
