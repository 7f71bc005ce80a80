-- The sweeper's step: ends up to STEP allocations that are due (_2-ledger.lua end_planned):
-- overdue leases with their active subtrees, then releases left in steps.
-- KEYS 1-9 and ARGV 1-8: see _2-ledger.lua.
-- Returns: ok {more: whether something is still due, nextExpiry: ms or null} | NOT_FOUND
-- Emits: EXPIRED and RELEASED for each allocation it ends
local ctx, early = ledger_begin()
if not ctx then return early end
end_planned(ctx)
local more = #redis.call('ZRANGEBYSCORE', KEYS[8], '-inf', '(' .. int(ctx.now), 'LIMIT', 0, 1) > 0
  or redis.call('EXISTS', ctx.base .. ':releasing') == 1
local next_expiry = redis.call('ZRANGE', KEYS[8], 0, 0, 'WITHSCORES')[2]
return '{"ok":true,"more":' .. tostring(more) .. ',"nextExpiry":' .. (next_expiry or 'null') .. '}'
