#!lua
-- The sweeper's step of ledger upkeep: ends up to STEP allocations that are due (_2-ledger.lua
-- end_planned): overdue leases with their active subtrees, then releases left in steps; then, with
-- the room of STEP left, prunes ended allocations whose retention ran out (prune_ended), so one
-- script handles at most STEP allocations.
-- KEYS 1-9 and ARGV 1-8: see _2-ledger.lua. ARGV: 9 retention of ended allocations (ms)
-- Returns: ok {more: whether something is still due, nextDue: ms when something next falls due
--          (a lease runs out or an ended allocation's retention does) or null, ended: how many it
--          ended, pruned: how many it pruned} | NOT_FOUND
-- Emits: EXPIRED and RELEASED for each allocation it ends (pruning emits nothing)
local ctx, early = ledger_begin()
if not ctx then return early end
local retention = tonumber(ARGV[9])
end_planned(ctx)
local pruned = prune_ended(ctx.base, ctx.now - retention, STEP - #ctx.plan)
local oldest_ended = tonumber(redis.call('ZRANGE', ctx.base .. ':ended', 0, 0, 'WITHSCORES')[2])
local more = #redis.call('ZRANGEBYSCORE', KEYS[8], '-inf', '(' .. int(ctx.now), 'LIMIT', 0, 1) > 0
  or redis.call('EXISTS', ctx.base .. ':releasing') == 1
  or (oldest_ended ~= nil and oldest_ended < ctx.now - retention)
local next_due = tonumber(redis.call('ZRANGE', KEYS[8], 0, 0, 'WITHSCORES')[2])
if oldest_ended and (not next_due or oldest_ended + retention < next_due) then next_due = oldest_ended + retention end
return '{"ok":true,"more":' .. tostring(more) .. ',"nextDue":' .. (next_due and int(next_due) or 'null') ..
  ',"ended":' .. #ctx.plan .. ',"pruned":' .. pruned .. '}'
