-- Ends an active allocation and, first, every active descendant (each RELEASED): final usage
-- is added to its consumption, consumption is charged up the chain and the unused rest of each
-- grant returns to its parent.
-- KEYS 1-9 and ARGV 1-8: see _2-ledger.lua. ARGV: 9 allocation number, 10 final usage "kind amount ..."
-- Returns: ok {allocation} | NOT_FOUND | ALLOCATION_ENDED | USAGE_EXCEEDED {kind, remaining}
-- Checks judge the ledger as if the overdue leases had ended; a refusal writes nothing.
-- Emits: EXPIRED for overdue leases, then RELEASED for each descendant and the allocation
local ctx, early = ledger_begin()
if not ctx then return early end
local n = ARGV[9]
local key, refusal = active_allocation(ctx, n)
if not key then return refusal end
local usage = words(ARGV[10])
-- What n may still spend does not depend on overdue descendants: ending one moves its
-- consumption from the descendants' sum to its parent's, within n's subtree.
for i = 1, #usage, 2 do
  local kind = usage[i]
  local remaining = granted(ctx.base, n, kind) - num(redis.call('HGET', key, 'c:' .. kind))
    - descendants_consumption(ctx.base, n, kind)
  if tonumber(usage[i + 1]) > remaining then
    return reply_error_raw('USAGE_EXCEEDED', 'final usage of ' .. kind .. ' exceeds what allocation ' .. ctx.id .. '#' .. n ..
      ' may still spend', ',"kind":' .. cjson.encode(kind) .. ',"remaining":' .. int(math.max(remaining, 0)))
  end
end
expire_due(ctx)
for i = 1, #usage, 2 do redis.call('HINCRBY', key, 'c:' .. usage[i], usage[i + 1]) end
end_allocation(ctx, n, 'RELEASED')
return ledger_done('{"ok":true,"allocation":' .. allocation_json(ctx.base, n, ctx.id) .. '}')
