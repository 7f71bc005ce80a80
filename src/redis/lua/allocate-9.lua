#!lua
-- Grants an allocation from the budget or from an active allocation, per kind at most
-- policy.allocation.maxShare of what the parent has available. A request must ask for something
-- (some amount above 0). EXACT grants all or nothing, and only kinds the parent holds; UP_TO
-- grants min(request, allowed) per kind (0 of a kind the parent does not hold) and is refused
-- only if every kind would get 0.
-- KEYS 1-9 and ARGV 1-8: see _2-ledger.lua. ARGV: 9 parent number ('' = the budget),
--   10 explicit request "kind amount ..." (overrides the profile's kinds), 11 profile name
--   ('' = none), 12 mode EXACT|UP_TO, 13 leaseMs ('' = profile's, else policy default, else none),
--   14 holder, 15 purpose
-- Returns: ok {allocation} | NOT_FOUND | ALLOCATION_ENDED (parent) | LIMIT_EXCEEDED (maxDepth)
--          | VALIDATION_FAILED (profile; request or profile asking for nothing)
--          | INSUFFICIENT_RESOURCES {available, requested: [{kind, amount}]} (the request with the
--            profile's amounts; the message names kinds not held)
-- Checks judge the ledger as if its step of overdue leases had ended; a refusal writes nothing.
-- Emits: EXPIRED and RELEASED for its step of due ends (_2-ledger.lua end_planned), then ALLOCATED
local ctx, early = ledger_begin()
if not ctx then return early end

local parent, parent_tier, parent_path = ARGV[9], 1, ''
if parent ~= '' then
  local status = status_of(ctx, parent)
  if not status then
    return reply_error('NOT_FOUND', 'allocation ' .. ctx.id .. '#' .. parent .. ' does not exist', { path = 'parentId' })
  end
  if status ~= 'ACTIVE' then
    return reply_error('ALLOCATION_ENDED', 'parent allocation ' .. ctx.id .. '#' .. parent .. ' is ' .. status, { status = status })
  end
  local p = redis.call('HMGET', node_key(ctx.base, parent), 'tier', 'path')
  parent_tier = tonumber(p[1])
  parent_path = p[2] == '' and parent or (p[2] .. ' ' .. parent)
end

local policy = redis.call('HMGET', KEYS[6], 'maxShare', 'defaultLeaseMs', 'maxDepth')
local max_share = tonumber(policy[1]) or 1
local max_depth = tonumber(policy[3]) or 8
local tier = parent_tier + 1
if tier > max_depth then
  return reply_error('LIMIT_EXCEEDED', 'tier ' .. tier .. ' is deeper than policy.allocation.maxDepth ' .. max_depth,
    { limit = 'maxDepth', max = max_depth })
end

local request, kinds, lease = {}, {}, ARGV[13]
local function ask(kind, amount)
  if request[kind] == nil then kinds[#kinds + 1] = kind end
  request[kind] = tonumber(amount)
end
if ARGV[11] ~= '' then
  local profile = redis.call('HGET', KEYS[6], 'profile:' .. ARGV[11])
  if not profile then
    return reply_error('VALIDATION_FAILED', 'policy.allocation.profiles has no profile ' .. ARGV[11], { path = 'profile' })
  end
  local items = {}
  for w in string.gmatch(profile, '[^,]+') do items[#items + 1] = w end
  for i = 1, #items, 2 do ask(items[i], items[i + 1]) end
  if lease == '' then lease = redis.call('HGET', KEYS[6], 'profileLease:' .. ARGV[11]) or '' end
end
local explicit = words(ARGV[10])
for i = 1, #explicit, 2 do ask(explicit[i], explicit[i + 1]) end
if lease == '' then lease = policy[2] or '' end
if #kinds == 0 then
  return reply_error('VALIDATION_FAILED', 'the request names no resource kind', { path = 'request' })
end
local asks = false
for _, kind in ipairs(kinds) do asks = asks or request[kind] > 0 end
if not asks then
  return reply_error('VALIDATION_FAILED', 'the request asks for nothing: every amount is 0',
    { path = ARGV[10] == '' and 'profile' or 'request' })
end

local grant, allowed, short, any, missing = {}, {}, false, false, {}
for _, kind in ipairs(kinds) do
  allowed[kind] = math.floor(available(ctx, parent, kind) * max_share)
  grant[kind] = math.min(request[kind], allowed[kind])
  if grant[kind] < request[kind] then short = true end
  if grant[kind] > 0 then any = true end
  if not holds(ctx.base, parent, kind) then missing[#missing + 1] = kind end
end
if (ARGV[12] == 'EXACT' and (short or #missing > 0)) or (ARGV[12] == 'UP_TO' and not any) then
  local source = parent == '' and 'budget' or ('allocation ' .. ctx.id .. '#' .. parent)
  local message = 'the ' .. source .. ' cannot cover the request'
  if ARGV[12] == 'EXACT' and #missing > 0 then message = message .. ': it holds no ' .. table.concat(missing, ', ') end
  return reply_error_raw('INSUFFICIENT_RESOURCES', message,
    ',"available":' .. amounts_json(kinds, function(kind) return allowed[kind] end) ..
    ',"requested":' .. amounts_json(kinds, function(kind) return request[kind] end))
end

end_planned(ctx)
local n = redis.call('INCR', ctx.base .. ':allocCount')
local key = node_key(ctx.base, n)
local expires = lease == '' and '' or int(ctx.now + tonumber(lease))
local fields = { 'parent', parent, 'tier', tier, 'path', parent_path, 'status', 'ACTIVE', 'kinds', table.concat(kinds, ' '),
  'holder', ARGV[14], 'purpose', ARGV[15], 'createdAt', int(ctx.now), 'expiresAt', expires, 'endedAt', '' }
for _, kind in ipairs(kinds) do
  local more = { 'q:' .. kind, int(request[kind]), 'g:' .. kind, int(grant[kind]), 'c:' .. kind, '0', 'r:' .. kind, '0' }
  for _, v in ipairs(more) do fields[#fields + 1] = v end
  redis.call('HINCRBY', node_key(ctx.base, parent), 'r:' .. kind, int(grant[kind]))
end
redis.call('HSET', key, unpack(fields))
redis.call('SADD', children_key(ctx.base, parent), n)
redis.call('ZADD', KEYS[9], n, n)
index_add(ctx.base, n, index_keys(ctx.base, 'ACTIVE', int(tier), ARGV[14], parent, false))
if expires ~= '' then redis.call('ZADD', KEYS[8], expires, n) end
local json = allocation_json(ctx.base, n, ctx.id)
ledger_change(ctx, 'ALLOCATED', 'allocation', json)
return ledger_done('{"ok":true,"allocation":' .. json .. '}')
