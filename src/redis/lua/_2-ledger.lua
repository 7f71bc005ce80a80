-- Ledger helpers, shared by the allocation and lock scripts. All of one context's keys start with
-- its base `<prefix>:{ctx:<id>}` (one hash tag, one Cluster slot):
--   <base>:alloc:<n>      hash, allocation n: parent ('' = the budget), tier, path (ancestor
--                         numbers, space-separated), status (ACTIVE|RELEASED|EXPIRED), kinds
--                         (space-separated), q:<kind> requested, g:<kind> granted, c:<kind>
--                         consumed (including what its ended descendants consumed), r:<kind>
--                         reserved (granted to its active children), holder, purpose,
--                         createdAt, expiresAt ('' = no lease), endedAt (ms since the epoch)
--   <base>:root           hash, the budget's c:<kind> and r:<kind>; its granted is <base>:limits
--   <base>:children:<n>   set of the active children of n ('root' for the budget)
--   <base>:leases         zset of active leased allocations by expiresAt
--   <base>:allocs         zset of every allocation number
--   <base>:allocCount     counter of allocation numbers
--   <base>:lock:<name>    hash holder, token, expiresAt; <base>:lockToken:<name> its token counter
--                         (never deleted, so tokens only grow); <base>:locks the set of names
-- Invariant, per kind at every node: consumed + reserved <= granted.
-- Ledger scripts take KEYS 1 meta, 2 seq, 3 feed, 4 op, 5 limits, 6 policy, 7 root, 8 leases,
-- 9 allocs and ARGV 1 fingerprint, 2 context id, 3 key base, 4 actor, 5 reason,
-- 6 feed retention, 7 seconds to keep the opId's record, 8 channel, then their own arguments from 9.
-- Time comes from Redis (TIME), one clock for every server instance.

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Integers as decimal strings: Lua's default number format would turn 1e15 into "1e+15".
local function int(n)
  return string.format('%d', n)
end

local function num(v)
  return tonumber(v) or 0
end

local function words(s)
  local out = {}
  for w in string.gmatch(s or '', '%S+') do out[#out + 1] = w end
  return out
end

-- ISO 8601 UTC of a time in ms (days-to-civil conversion; scripts have no os.date).
local function iso(ms)
  local s = math.floor(ms / 1000)
  local days = math.floor(s / 86400)
  local rem = s - days * 86400
  local z = days + 719468
  local era = math.floor(z / 146097)
  local doe = z - era * 146097
  local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524) - math.floor(doe / 146096)) / 365)
  local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
  local mp = math.floor((5 * doy + 2) / 153)
  local d = doy - math.floor((153 * mp + 2) / 5) + 1
  local m = mp < 10 and mp + 3 or mp - 9
  local y = yoe + era * 400 + (m <= 2 and 1 or 0)
  return string.format('%04d-%02d-%02dT%02d:%02d:%02d.%03dZ', y, m, d, math.floor(rem / 3600),
    math.floor(rem % 3600 / 60), rem % 60, ms % 1000)
end

local function node_key(base, n)
  if n == '' then return base .. ':root' end
  return base .. ':alloc:' .. n
end

local function children_key(base, n)
  return base .. ':children:' .. (n == '' and 'root' or n)
end

local function granted(base, n, kind)
  if n == '' then return num(redis.call('HGET', base .. ':limits', kind)) end
  return num(redis.call('HGET', node_key(base, n), 'g:' .. kind))
end

-- Whether node n ('' = the budget) holds a kind: the budget, the kinds of its limits; an
-- allocation, the kinds it was granted (0 included).
local function holds(base, n, kind)
  if n == '' then return redis.call('HEXISTS', base .. ':limits', kind) == 1 end
  return redis.call('HEXISTS', node_key(base, n), 'g:' .. kind) == 1
end

-- Consumption that ending n's active descendants would charge to n.
local function descendants_consumption(base, n, kind)
  local total = 0
  for _, child in ipairs(redis.call('SMEMBERS', children_key(base, n))) do
    total = total + num(redis.call('HGET', node_key(base, child), 'c:' .. kind)) + descendants_consumption(base, child, kind)
  end
  return total
end

-- What expire_due will end, found without writing and once per script, so that checks can judge
-- the ledger as if it had happened: a refusal then writes nothing (not even the expiry) and an
-- accepted operation can use the room. Sets ctx.ending, the set of allocation numbers that end
-- (the overdue ones and their active descendants), and ctx.ending_under, parent number
-- ('' = the budget) -> its ending children, for parents that stay.
local function plan_expiry(ctx)
  if ctx.ending then return end
  local ending, parent_of = {}, {}
  local function mark(n)
    ending[n] = true
    for _, child in ipairs(redis.call('SMEMBERS', children_key(ctx.base, n))) do mark(child) end
  end
  for _, n in ipairs(ctx.due) do
    local a = redis.call('HMGET', node_key(ctx.base, n), 'status', 'parent')
    if not ending[n] and a[1] == 'ACTIVE' then
      mark(n)
      parent_of[n] = a[2]
    end
  end
  local under = {}
  for _, n in ipairs(ctx.due) do
    local parent = parent_of[n]
    if parent and not ending[parent] then
      under[parent] = under[parent] or {}
      table.insert(under[parent], n)
    end
  end
  ctx.ending, ctx.ending_under = ending, under
end

-- n's status once the overdue leases have ended (nil if there is no allocation n).
local function status_of(ctx, n)
  local status = redis.call('HGET', node_key(ctx.base, n), 'status')
  if status ~= 'ACTIVE' then return status end
  plan_expiry(ctx)
  if ctx.ending[n] then return 'EXPIRED' end
  return status
end

-- What node n (active, '' = the budget) can still hand out or spend of a kind once the overdue
-- leases have ended: each ending child gives back its grant and charges its subtree's
-- consumption, as end_allocation will. Never below 0: limits may be lowered live.
local function available(ctx, n, kind)
  local key = node_key(ctx.base, n)
  local consumed = num(redis.call('HGET', key, 'c:' .. kind))
  local reserved = num(redis.call('HGET', key, 'r:' .. kind))
  plan_expiry(ctx)
  for _, child in ipairs(ctx.ending_under[n] or {}) do
    reserved = reserved - num(redis.call('HGET', node_key(ctx.base, child), 'g:' .. kind))
    consumed = consumed + num(redis.call('HGET', node_key(ctx.base, child), 'c:' .. kind))
      + descendants_consumption(ctx.base, child, kind)
  end
  local v = granted(ctx.base, n, kind) - consumed - reserved
  if v < 0 then return 0 end
  return v
end

-- [{"kind":..,"amount":..}] from a table kind -> amount, in the order of `kinds`.
local function amounts_json(kinds, amount_of)
  local parts = {}
  for _, kind in ipairs(kinds) do
    parts[#parts + 1] = '{"kind":' .. cjson.encode(kind) .. ',"amount":' .. int(amount_of(kind)) .. '}'
  end
  return '[' .. table.concat(parts, ',') .. ']'
end

-- An allocation as JSON for replies and feed entries (parsed by src/store/allocations.ts).
local function allocation_json(base, n, context_id)
  local key = node_key(base, n)
  local a = redis.call('HMGET', key, 'parent', 'tier', 'path', 'status', 'kinds', 'holder', 'purpose', 'createdAt',
    'expiresAt', 'endedAt')
  local kinds = words(a[5])
  local function field(prefix) return amounts_json(kinds, function(kind) return num(redis.call('HGET', key, prefix .. kind)) end) end
  local function opt(v) if not v or v == '' then return 'null' end return v end
  local function str(v) if not v or v == '' then return 'null' end return cjson.encode(v) end
  return '{"n":' .. n .. ',"contextId":' .. cjson.encode(context_id) .. ',"parent":' .. opt(a[1]) ..
    ',"tier":' .. a[2] .. ',"path":[' .. table.concat(words(a[3]), ',') .. '],"status":"' .. a[4] ..
    '","requested":' .. field('q:') .. ',"granted":' .. field('g:') .. ',"consumed":' .. field('c:') ..
    ',"reserved":' .. field('r:') .. ',"holder":' .. str(a[6]) .. ',"purpose":' .. str(a[7]) ..
    ',"createdAt":' .. a[8] .. ',"expiresAt":' .. opt(a[9]) .. ',"endedAt":' .. opt(a[10]) .. '}'
end

local function lock_json(name, holder, token, expires_at)
  return '{"name":' .. cjson.encode(name) .. ',"holder":' .. cjson.encode(holder) .. ',"token":' .. token ..
    ',"expiresAt":' .. expires_at .. '}'
end

-- A refusal whose details are JSON already (exact integers); `raw` is ',"field":value...' or ''.
local function reply_error_raw(code, message, raw)
  return '{"error":"' .. code .. '","message":' .. cjson.encode(message) .. raw .. '}'
end

-- Appends a ledger or lock change to the feed; `field` is 'allocation' or 'lock'.
local function ledger_change(ctx, kind, field, json)
  return append_change(ctx.base .. ':seq', ctx.base .. ':feed', ctx.retention, ctx.channel, ctx.id, {
    'kind', kind, 'version', redis.call('HGET', ctx.base .. ':meta', 'version') or '0', 'paths', '[]', 'patch', '[]',
    'actor', ctx.actor, 'reason', ctx.reason, 'at', iso(ctx.now), field, json })
end

-- Ends n and, first, its active descendants, with `status` (RELEASED or EXPIRED): each charges
-- its consumption to its parent and gives back the rest of its grant; one feed entry each.
local function end_allocation(ctx, n, status)
  for _, child in ipairs(redis.call('SMEMBERS', children_key(ctx.base, n))) do end_allocation(ctx, child, status) end
  local key = node_key(ctx.base, n)
  local a = redis.call('HMGET', key, 'parent', 'kinds')
  local parent_key = node_key(ctx.base, a[1])
  for _, kind in ipairs(words(a[2])) do
    redis.call('HINCRBY', parent_key, 'r:' .. kind, int(-num(redis.call('HGET', key, 'g:' .. kind))))
    redis.call('HINCRBY', parent_key, 'c:' .. kind, int(num(redis.call('HGET', key, 'c:' .. kind))))
  end
  redis.call('SREM', children_key(ctx.base, a[1]), n)
  redis.call('ZREM', ctx.base .. ':leases', n)
  redis.call('HSET', key, 'status', status, 'endedAt', int(ctx.now))
  ledger_change(ctx, status, 'allocation', allocation_json(ctx.base, n, ctx.id))
end

-- Ends every allocation whose lease ran out (before now), one EXPIRED entry each, so that the
-- feed shows them before the change that relied on their room. Every script calls it after its
-- last check and before its first write: a refused operation leaves them to the next accepted
-- one or the sweeper.
local function expire_due(ctx)
  for _, n in ipairs(ctx.due) do
    if redis.call('HGET', node_key(ctx.base, n), 'status') == 'ACTIVE' then end_allocation(ctx, n, 'EXPIRED') end
  end
end

-- The common start of a ledger script: returns ctx (with `due`, the overdue lease numbers), or nil
-- and the reply to return at once (the recorded outcome of a replayed opId, or NOT_FOUND for a
-- missing context). It writes nothing.
local function ledger_begin()
  local ctx = { id = ARGV[2], base = ARGV[3], actor = ARGV[4], reason = ARGV[5], retention = ARGV[6],
    channel = ARGV[8], now = now_ms() }
  local previous = recorded_reply(KEYS[4], ARGV[1])
  if previous then return nil, previous end
  if redis.call('EXISTS', KEYS[1]) == 0 then
    return nil, reply_error('NOT_FOUND', 'context ' .. ctx.id .. ' does not exist', { id = ctx.id })
  end
  ctx.due = redis.call('ZRANGEBYSCORE', KEYS[8], '-inf', '(' .. int(ctx.now))
  return ctx
end

-- Records the reply under the opId and returns it.
local function ledger_done(reply)
  record_reply(KEYS[4], ARGV[1], reply, ARGV[7])
  return reply
end

-- An allocation that may be changed (active, and not ending with the overdue leases): returns
-- its key, or nil and the refusal.
local function active_allocation(ctx, n)
  local key = node_key(ctx.base, n)
  local status = status_of(ctx, n)
  if not status then
    return nil, reply_error('NOT_FOUND', 'allocation ' .. ctx.id .. '#' .. n .. ' does not exist', { path = 'allocationId' })
  end
  if status ~= 'ACTIVE' then
    return nil, reply_error('ALLOCATION_ENDED', 'allocation ' .. ctx.id .. '#' .. n .. ' is ' .. status, { status = status })
  end
  return key
end
