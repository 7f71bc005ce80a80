#!lua
-- Ends an active allocation and, first, every active descendant (each RELEASED, deepest first):
-- final usage is added to its consumption, consumption is charged up the chain and the unused
-- rest of each grant returns to its parent. A subtree larger than one step (STEP, _2-ledger.lua)
-- is released over several calls with the same op record (KEYS 4, ARGV 1): the first checks,
-- marks the allocation (releaseOp, <base>:releasing) and ends a step's worth; each later call,
-- a retry of the same opId included, ends the next step; the one that ends the allocation itself
-- answers and records the reply. While it is marked, any other write at or under it is refused
-- with ALLOCATION_ENDED (status RELEASED).
-- KEYS 1-9 and ARGV 1-8: see _2-ledger.lua. ARGV: 9 allocation number, 10 final usage "kind amount ..."
-- Returns: ok {allocation} | pending (call again) | NOT_FOUND | ALLOCATION_ENDED
--          | USAGE_EXCEEDED {kind, remaining} | VALIDATION_FAILED (opId of another release)
-- Checks judge the ledger as if its step of overdue leases had ended; a refusal writes nothing.
-- Emits: EXPIRED and RELEASED for its step of due ends (_2-ledger.lua end_planned), then RELEASED
--        for the descendants it ends and, in the last step, the allocation
local ctx, early = ledger_begin()
if not ctx then return early end
local n = ARGV[9]
local key = node_key(ctx.base, n)
local releasing = redis.call('HMGET', key, 'releaseOp', 'releaseFingerprint')
if releasing[1] == KEYS[4] then
  if releasing[2] ~= ARGV[1] then
    return reply_error('VALIDATION_FAILED', 'opId was already used for a different operation', { path = 'opId' })
  end
  plan_expiry(ctx)
  plan_subtree(ctx, n, 'RELEASED')
else
  local _, refusal = active_allocation(ctx, n)
  if refusal then return refusal end
  local usage = words(ARGV[10])
  -- c: + d: is what n's subtree has consumed, however much of it has ended.
  for i = 1, #usage, 2 do
    local kind = usage[i]
    local remaining = granted(ctx.base, n, kind) - num(redis.call('HGET', key, 'c:' .. kind)) - num(redis.call('HGET', key, 'd:' .. kind))
    if tonumber(usage[i + 1]) > remaining then
      return reply_error_raw('USAGE_EXCEEDED', 'final usage of ' .. kind .. ' exceeds what allocation ' .. ctx.id .. '#' .. n ..
        ' may still spend', ',"kind":' .. cjson.encode(kind) .. ',"remaining":' .. int(math.max(remaining, 0)))
    end
  end
  plan_expiry(ctx)
  plan_subtree(ctx, n, 'RELEASED')
  add_usage(ctx, n, ARGV[10], 'd:')
  if not ctx.planned[n] then
    redis.call('HSET', key, 'releaseOp', KEYS[4], 'releaseFingerprint', ARGV[1], 'releaseTtl', ARGV[7])
    redis.call('ZADD', ctx.base .. ':releasing', int(ctx.now), n)
  end
end
end_planned(ctx)
if not ctx.planned[n] then return '{"pending":true}' end
return ledger_done('{"ok":true,"allocation":' .. allocation_json(ctx.base, n, ctx.id) .. '}')
