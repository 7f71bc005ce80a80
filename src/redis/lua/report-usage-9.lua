#!lua
-- Adds usage to an active allocation's consumption, refused if any kind would exceed what the
-- allocation may still spend (granted - consumed - reserved).
-- KEYS 1-9 and ARGV 1-8: see _2-ledger.lua. ARGV: 9 allocation number, 10 usage "kind amount ..."
-- Returns: ok {allocation} | NOT_FOUND | ALLOCATION_ENDED | USAGE_EXCEEDED {kind, remaining}
-- Checks judge the ledger as if its step of overdue leases had ended; a refusal writes nothing.
-- Emits: EXPIRED and RELEASED for its step of due ends (_2-ledger.lua end_planned), then USAGE_REPORTED
local ctx, early = ledger_begin()
if not ctx then return early end
local n = ARGV[9]
local key, refusal = active_allocation(ctx, n)
if not key then return refusal end
local usage = words(ARGV[10])
for i = 1, #usage, 2 do
  local remaining = available(ctx, n, usage[i])
  if tonumber(usage[i + 1]) > remaining then
    return reply_error_raw('USAGE_EXCEEDED', 'usage of ' .. usage[i] .. ' exceeds what allocation ' .. ctx.id .. '#' .. n ..
      ' may still spend', ',"kind":' .. cjson.encode(usage[i]) .. ',"remaining":' .. int(remaining))
  end
end
end_planned(ctx)
add_usage(ctx, n, ARGV[10], 'c:')
local json = allocation_json(ctx.base, n, ctx.id)
ledger_change(ctx, 'USAGE_REPORTED', 'allocation', json)
return ledger_done('{"ok":true,"allocation":' .. json .. '}')
