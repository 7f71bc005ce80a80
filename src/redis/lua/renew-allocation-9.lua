#!lua
-- Sets an active allocation's lease to end leaseMs from now.
-- KEYS 1-9 and ARGV 1-8: see _2-ledger.lua. ARGV: 9 allocation number, 10 leaseMs
-- Returns: ok {allocation} | NOT_FOUND | ALLOCATION_ENDED
-- A refusal writes nothing (an allocation whose lease ran out is ALLOCATION_ENDED, status EXPIRED).
-- Emits: EXPIRED and RELEASED for its step of due ends (_2-ledger.lua end_planned), then RENEWED
local ctx, early = ledger_begin()
if not ctx then return early end
local n = ARGV[9]
local key, refusal = active_allocation(ctx, n)
if not key then return refusal end
end_planned(ctx)
local expires = int(ctx.now + tonumber(ARGV[10]))
redis.call('HSET', key, 'expiresAt', expires)
redis.call('ZADD', KEYS[8], expires, n)
local json = allocation_json(ctx.base, n, ctx.id)
ledger_change(ctx, 'RENEWED', 'allocation', json)
return ledger_done('{"ok":true,"allocation":' .. json .. '}')
