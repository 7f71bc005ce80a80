-- Ledger helpers, shared by the allocation and lock scripts. All of one context's keys start with
-- its key base `<prefix>:{ctx:<id>}` (keys.ts contextBase: one hash tag, one Cluster slot). The
-- scripts declare the fixed keys they use (KEYS below) and build the others from the key base,
-- ARGV 3, which ledger_begin first checks to carry KEYS[1]'s hash tag:
--   <base>:alloc:<n>      hash, allocation n: parent ('' = the budget), tier, path (ancestor
--                         numbers, space-separated), status (ACTIVE|RELEASED|EXPIRED), kinds
--                         (space-separated), q:<kind> requested, g:<kind> granted, c:<kind>
--                         consumed (including what its ended descendants consumed), r:<kind>
--                         reserved (granted to its active children), d:<kind> what ending its
--                         active subtree will still charge to it (its active descendants'
--                         consumption, plus the final usage of a release in steps; absent = 0),
--                         holder, purpose, createdAt, expiresAt ('' = no lease), endedAt (ms since
--                         the epoch); while it is released in steps, releaseOp, releaseFingerprint
--                         and releaseTtl: where that release records its reply
--   <base>:root           hash, the budget's c:<kind> and r:<kind>; its granted is <base>:limits
--   <base>:children:<n>   set of the active children of n ('root' for the budget)
--   <base>:leases         zset of active leased allocations by expiresAt
--   <base>:releasing      zset of allocations being released in steps, by when the release began
--   <base>:allocs         zset of every allocation number (until retention prunes it)
--   <base>:ended          zset of the ended (RELEASED|EXPIRED) allocations by endedAt, which
--                         retention prunes (prune_ended)
--   <base>:ix:<status|*>:<tier|*>:<h=holder|*>
--                         read index (keys.ts allocationIndex): zset of the numbers (score: the
--                         number) of the allocations of that status, tier and holder ('*': any);
--                         an allocation without a holder is only in the holder '*' ones
--   <base>:kids:<parent|root>:<status|*>
--                         read index (keys.ts childIndex): zset of the numbers of parent's
--                         children (active or ended) of that status ('*': any)
--   <base>:indexes        set of the read index keys (ix, kids) the scripts created: a key joins
--                         it when a script adds to it, and leaves it when a script empties it
--   <base>:allocCount     counter of allocation numbers
--   <base>:lock:<name>    hash holder, token, expiresAt; <base>:lockToken:<name> its token counter
--                         (kept with the seq counter, so tokens only grow; it starts at meta
--                         `floor` when there is one); <base>:locks the set of names held;
--                         <base>:lockNames the set of names that have a token counter
--   <base>:tomb           hash, what is left of a deleted context (keys.ts tombstone)
-- Every allocation number and lock token is taken in a script that also appends a feed entry,
-- and all three counters start equal, so neither exceeds the context's seq (keys.ts IndexKeys.counterFloor).
-- Invariant, per kind at every node: consumed + reserved <= granted.
-- Ledger scripts take KEYS 1 meta, 2 seq, 3 feed, 4 op, 5 limits, 6 policy, 7 root, 8 leases,
-- 9 allocs and ARGV 1 fingerprint, 2 context id, 3 key base (of KEYS[1]'s hash tag), 4 actor,
-- 5 reason, 6 feed retention, 7 seconds to keep the opId's record, 8 channel, then their own
-- arguments from 9. A release in steps keeps its op record's key (its KEYS 4) in releaseOp; the
-- script that ends the allocation, maybe another, records the reply there: a key of this slot.
-- Time comes from Redis (TIME), one clock for every server instance.
--
-- Ending is bounded: one script ends at most STEP allocations, each only after its active
-- children (deepest first), so every step is a sequence of ordinary ends that keep the
-- invariant, and no allocation is ever ACTIVE under an ended one. What does not fit waits: an
-- overdue lease over a larger subtree ends over several scripts (each accepted ledger or lock
-- operation on the swarm, and the sweeper, takes one step); a release of a larger subtree is
-- marked (releaseOp, <base>:releasing) and ended over several calls. Until its last step a
-- half-done release or expiry shows its root ACTIVE with part of its subtree ended, the root's
-- grant still reserved by its parent, and every write at or under the root refused with
-- ALLOCATION_ENDED; checks count only the room the current step frees.

-- At most this many allocations end in one script: about 5 ms of Redis time (README, Budgets).
local STEP = 50

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
  if n == '' then return KEYS[7] end
  return base .. ':alloc:' .. n
end

local function children_key(base, n)
  return base .. ':children:' .. (n == '' and 'root' or n)
end

local function granted(base, n, kind)
  if n == '' then return num(redis.call('HGET', KEYS[5], kind)) end
  return num(redis.call('HGET', node_key(base, n), 'g:' .. kind))
end

-- Whether node n ('' = the budget) holds a kind: the budget, the kinds of its limits; an
-- allocation, the kinds it was granted (0 included).
local function holds(base, n, kind)
  if n == '' then return redis.call('HEXISTS', KEYS[5], kind) == 1 end
  return redis.call('HEXISTS', node_key(base, n), 'g:' .. kind) == 1
end

-- The read indexes (keys.ts allocationIndex, childIndex) an allocation of `tier`, `holder` ('' =
-- none) and `parent` ('' = the budget) is in while it has `status`: the allocationIndex of every
-- combination of (status|*) x (tier|*) x (holder|*) (holder * only without one) and the
-- childIndex of (status|*) under its parent; with only_status, just the ones naming the status.
local function index_keys(base, status, tier, holder, parent, only_status)
  local out, holders = {}, { '*' }
  if holder and holder ~= '' then holders[2] = 'h=' .. holder end
  for _, s in ipairs(only_status and { status } or { status, '*' }) do
    for _, t in ipairs({ tier, '*' }) do
      for _, h in ipairs(holders) do out[#out + 1] = base .. ':ix:' .. s .. ':' .. t .. ':' .. h end
    end
    out[#out + 1] = base .. ':kids:' .. (parent == '' and 'root' or parent) .. ':' .. s
  end
  return out
end

-- Adds allocation n to the read indexes `keys`, filing them in <base>:indexes (one SADD).
local function index_add(base, n, keys)
  for _, k in ipairs(keys) do redis.call('ZADD', k, n, n) end
  redis.call('SADD', base .. ':indexes', unpack(keys))
end

-- Removes allocation n from the read indexes `keys`; one left empty (so gone) leaves <base>:indexes.
local function index_remove(base, n, keys)
  for _, k in ipairs(keys) do
    redis.call('ZREM', k, n)
    if redis.call('EXISTS', k) == 0 then redis.call('SREM', base .. ':indexes', k) end
  end
end

-- Moves allocation n (hash fields a: tier, holder, parent) from the indexes of status `from` to those of `to`.
local function index_move(base, n, a, from, to)
  index_remove(base, n, index_keys(base, from, a.tier, a.holder, a.parent, true))
  index_add(base, n, index_keys(base, to, a.tier, a.holder, a.parent, true))
end

-- Prunes at most `limit` ended allocations whose endedAt is before `cutoff` (ms), oldest first:
-- each one's hash, read index entries, number in <base>:allocs and children set. Its feed
-- entries stay. Never an ACTIVE one (only numbers of <base>:ended, each checked). Returns how
-- many it pruned.
local function prune_ended(base, cutoff, limit)
  if limit <= 0 then return 0 end
  local pruned = 0
  for _, n in ipairs(redis.call('ZRANGEBYSCORE', base .. ':ended', '-inf', '(' .. int(cutoff), 'LIMIT', 0, limit)) do
    local key = node_key(base, n)
    local a = redis.call('HMGET', key, 'status', 'tier', 'holder', 'parent')
    if a[1] and a[1] ~= 'ACTIVE' then
      index_remove(base, n, index_keys(base, a[1], a[2], a[3], a[4], false))
      redis.call('DEL', key, children_key(base, n))
      redis.call('ZREM', KEYS[9], n)
      pruned = pruned + 1
    end
    redis.call('ZREM', base .. ':ended', n)
  end
  return pruned
end

-- Adds usage ("kind amount ...") to n's `field`: 'c:' for reported usage, 'd:' for a release's
-- final usage, which joins c: when n ends (before, with its active children still holding their
-- grants, it could exceed n's grant). Either way n's ancestors will be charged it: their d: grows.
local function add_usage(ctx, n, usage, field)
  local items = words(usage)
  if #items == 0 then return end
  local chain = words(redis.call('HGET', node_key(ctx.base, n), 'path'))
  for i = 1, #items, 2 do
    redis.call('HINCRBY', node_key(ctx.base, n), field .. items[i], items[i + 1])
    for _, ancestor in ipairs(chain) do redis.call('HINCRBY', node_key(ctx.base, ancestor), 'd:' .. items[i], items[i + 1]) end
  end
end

-- Adds n, whose active children are all planned, to the plan of this script's ends.
local function plan_end(ctx, n, status)
  local parent = redis.call('HGET', node_key(ctx.base, n), 'parent')
  ctx.plan[#ctx.plan + 1] = { n = n, status = status }
  ctx.planned[n] = true
  ctx.planned_under[parent] = ctx.planned_under[parent] or {}
  table.insert(ctx.planned_under[parent], n)
end

-- Plans the end of top and its active subtree with `status`, deepest first, as far as the plan
-- has room (STEP). Children sets are read with SSCAN, a batch at a time, so the work grows with
-- the plan and the depth, not with the subtree. Returns whether top itself is planned.
local function plan_subtree(ctx, top, status)
  if ctx.planned[top] then return true end
  local stack = { { n = top, batch = {}, i = 1 } }
  while #stack > 0 do
    local frame = stack[#stack]
    if frame.i <= #frame.batch then
      local child = frame.batch[frame.i]
      frame.i = frame.i + 1
      if not ctx.planned[child] then
        if #ctx.plan >= STEP then return false end
        stack[#stack + 1] = { n = child, batch = {}, i = 1 }
      end
    elseif frame.cursor ~= '0' then
      local scan = redis.call('SSCAN', children_key(ctx.base, frame.n), frame.cursor or '0', 'COUNT', 100)
      frame.cursor, frame.batch, frame.i = scan[1], scan[2], 1
    else
      if #ctx.plan >= STEP then return false end
      plan_end(ctx, frame.n, status)
      stack[#stack] = nil
    end
  end
  return true
end

-- Plans this script's share of the overdue leases (ends with status EXPIRED, oldest lease first,
-- each with its active subtree), without writing and once per script, so that checks can judge
-- the ledger as if it had happened: a refusal then writes nothing (not even the expiry) and an
-- accepted operation can use the room. Sets ctx.plan (in end order), ctx.planned (n -> true) and
-- ctx.planned_under (parent number, '' = the budget -> its planned children).
local function plan_expiry(ctx)
  if ctx.plan then return end
  ctx.plan, ctx.planned, ctx.planned_under = {}, {}, {}
  local offset = 0
  while #ctx.plan < STEP do
    local due = redis.call('ZRANGEBYSCORE', KEYS[8], '-inf', '(' .. int(ctx.now), 'LIMIT', offset, STEP)
    for _, n in ipairs(due) do
      if not plan_subtree(ctx, n, 'EXPIRED') then return end
    end
    if #due < STEP then return end
    offset = offset + #due
  end
end

-- n's status for a write (nil if there is no allocation n): an ACTIVE allocation that is being
-- released in steps, or whose lease ran out, counts as ended, and so does everything under it.
-- O(depth), whatever the size of the subtree.
local function status_of(ctx, n)
  local a = redis.call('HMGET', node_key(ctx.base, n), 'status', 'path')
  if a[1] ~= 'ACTIVE' then return a[1] or nil end
  local chain = words(a[2])
  chain[#chain + 1] = n
  for _, m in ipairs(chain) do
    local b = redis.call('HMGET', node_key(ctx.base, m), 'releaseOp', 'expiresAt')
    if b[1] then return 'RELEASED' end
    local expires = tonumber(b[2])
    if expires and expires < ctx.now then return 'EXPIRED' end
  end
  return 'ACTIVE'
end

-- What node n (active, '' = the budget) can still hand out or spend of a kind once this script's
-- planned expiries have happened: each planned child gives back its grant and charges what its
-- subtree consumed, as end_one will. Room that a later step frees still counts as held. Never
-- below 0: limits may be lowered live.
local function available(ctx, n, kind)
  local key = node_key(ctx.base, n)
  local consumed = num(redis.call('HGET', key, 'c:' .. kind))
  local reserved = num(redis.call('HGET', key, 'r:' .. kind))
  plan_expiry(ctx)
  for _, child in ipairs(ctx.planned_under[n] or {}) do
    local c = redis.call('HMGET', node_key(ctx.base, child), 'g:' .. kind, 'c:' .. kind, 'd:' .. kind)
    reserved = reserved - num(c[1])
    consumed = consumed + num(c[2]) + num(c[3])
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
  return append_change(KEYS[2], KEYS[3], ctx.retention, ctx.channel, ctx.id, {
    'kind', kind, 'version', redis.call('HGET', KEYS[1], 'version') or '0', 'paths', '[]', 'patch', '[]',
    'actor', ctx.actor, 'reason', ctx.reason, 'at', iso(ctx.now), field, json })
end

-- Ends n, whose active children have all ended, with `status` (RELEASED or EXPIRED): what its
-- subtree consumed (c: + d:) becomes its consumption and is charged to its parent, and the rest
-- of its grant goes back; one feed entry. If n was being released in steps, that release is
-- done: its reply is recorded under the release's op record (unless that holds another one).
local function end_one(ctx, n, status)
  local key = node_key(ctx.base, n)
  local a = redis.call('HMGET', key, 'parent', 'kinds', 'releaseOp', 'releaseFingerprint', 'releaseTtl', 'tier', 'holder')
  local parent_key = node_key(ctx.base, a[1])
  for _, kind in ipairs(words(a[2])) do
    local v = redis.call('HMGET', key, 'g:' .. kind, 'c:' .. kind, 'd:' .. kind)
    local pending = num(v[3])
    local consumed = num(v[2]) + pending
    if pending ~= 0 then redis.call('HSET', key, 'c:' .. kind, int(consumed), 'd:' .. kind, '0') end
    redis.call('HINCRBY', parent_key, 'r:' .. kind, int(-num(v[1])))
    redis.call('HINCRBY', parent_key, 'c:' .. kind, int(consumed))
    if a[1] ~= '' and consumed ~= 0 then redis.call('HINCRBY', parent_key, 'd:' .. kind, int(-consumed)) end
  end
  redis.call('SREM', children_key(ctx.base, a[1]), n)
  redis.call('ZREM', KEYS[8], n)
  redis.call('HSET', key, 'status', status, 'endedAt', int(ctx.now))
  index_move(ctx.base, n, { tier = a[6], holder = a[7], parent = a[1] }, 'ACTIVE', status)
  redis.call('ZADD', ctx.base .. ':ended', int(ctx.now), n)
  local json = allocation_json(ctx.base, n, ctx.id)
  ledger_change(ctx, status, 'allocation', json)
  if a[3] then
    redis.call('HDEL', key, 'releaseOp', 'releaseFingerprint', 'releaseTtl')
    redis.call('ZREM', ctx.base .. ':releasing', n)
    if redis.call('EXISTS', a[3]) == 0 then record_reply(a[3], a[4], '{"ok":true,"allocation":' .. json .. '}', a[5]) end
  end
end

-- Ends what this script planned, in plan order, after planning with the room STEP leaves the
-- releases left in steps (oldest first): any accepted script moves those on, so one whose server
-- stopped still ends. Every script calls it after its last check and before its own change (a
-- release after marking itself), so that the feed shows these ends before the change that relied
-- on their room; a refused operation leaves them to the next accepted one or the sweeper.
local function end_planned(ctx)
  plan_expiry(ctx)
  for _, n in ipairs(redis.call('ZRANGE', ctx.base .. ':releasing', 0, STEP - 1)) do
    if not plan_subtree(ctx, n, 'RELEASED') then break end
  end
  for _, e in ipairs(ctx.plan) do end_one(ctx, e.n, e.status) end
end

-- The common start of a ledger script: returns ctx, or nil and the reply to return at once (the
-- recorded outcome of a replayed opId, or NOT_FOUND for a missing context). It writes nothing
-- but a replay's record (see replayed_reply).
local function ledger_begin()
  check_key_base(ARGV[3])
  local ctx = { id = ARGV[2], base = ARGV[3], actor = ARGV[4], reason = ARGV[5], retention = ARGV[6],
    channel = ARGV[8], now = now_ms() }
  local previous = replayed_reply(KEYS[4], ARGV[1])
  if previous then return nil, previous end
  if redis.call('EXISTS', KEYS[1]) == 0 then
    return nil, reply_error('NOT_FOUND', 'context ' .. ctx.id .. ' does not exist', { id = ctx.id })
  end
  return ctx
end

-- Records the reply under the opId and returns it.
local function ledger_done(reply)
  record_reply(KEYS[4], ARGV[1], reply, ARGV[7])
  return reply
end

-- An allocation that may be changed (active, and neither ending nor under one that is, see
-- status_of): returns its key, or nil and the refusal.
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
