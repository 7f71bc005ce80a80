-- The sweeper's step: ends every allocation of the context whose lease ran out.
-- KEYS 1-9 and ARGV 1-8: see _2-ledger.lua.
-- Returns: ok {nextExpiry: ms or null} | NOT_FOUND
-- Emits: EXPIRED for each allocation ended (and its descendants)
local ctx, early = ledger_begin()
if not ctx then return early end
expire_due(ctx)
local next_expiry = redis.call('ZRANGE', KEYS[8], 0, 0, 'WITHSCORES')[2]
return '{"ok":true,"nextExpiry":' .. (next_expiry or 'null') .. '}'
