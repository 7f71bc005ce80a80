-- Sets an active allocation's lease to end leaseMs from now.
-- KEYS and ARGV 1-9: see _2-ledger.lua. ARGV: 10 allocation number, 11 leaseMs
-- Returns: ok {allocation} | NOT_FOUND | ALLOCATION_ENDED
-- Emits: EXPIRED for overdue leases, then RENEWED
local ctx, early = ledger_begin()
if not ctx then return early end
local n = ARGV[10]
local key, refusal = active_allocation(ctx, n)
if not key then return refusal end
local expires = int(ctx.now + tonumber(ARGV[11]))
redis.call('HSET', key, 'expiresAt', expires)
redis.call('ZADD', KEYS[8], expires, n)
local json = allocation_json(ctx.base, n, ctx.id)
ledger_change(ctx, 'RENEWED', 'allocation', json)
return ledger_done('{"ok":true,"allocation":' .. json .. '}')
