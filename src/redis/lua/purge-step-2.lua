#!lua
-- Takes the next bounded step of what is left of a deleted context, as its tombstone
-- (keys.ts tombstone, written by delete-context-7.lua) says, in this order:
--   purge   its ledger's keys: STEP allocation hashes and their children sets, then STEP locks,
--           then INDEX_STEP read index keys listed in <base>:indexes, then the fixed ledger keys
--           (root, children:root, leases, releasing, allocs, locks, indexes, ended);
--   raise   half a retention after the deletion, the counterFloor of the id's index shard (keys.ts
--           IndexKeys: another slot, and the one a create of the id reads; raised by
--           raise-floor-1.lua) must reach the tombstone's seq: answered {"raise":seq} until a
--           call passes a floor that does, which records raisedAt (Redis time);
--   prune   half a retention after raisedAt: STEP lock token counters (<base>:lockNames), then
--           the seq counter, the feed stream (UNLINK: freed off the main thread), the allocation
--           counter, <base>:lockNames and the tombstone.
-- The prune thus comes at least a retention after the deletion and half a retention after the
-- floor covered the context: a create that read the floor less than that long before it runs
-- (create-context-7.lua checks) saw the raise. The floor is raised only for contexts about to be
-- pruned, so where none ever is, new contexts start at seq 1.
-- A context that exists again (its meta is back) has nothing left to do: the tombstone goes.
-- KEYS: 1 meta, 2 tombstone
-- ARGV: 1 the key base (keys.ts contextBase), checked to carry KEYS[1]'s hash tag: the script
--       builds the keys listed above from it (_2-ledger.lua lays them out), 2 deleted-context
--       retention (ms), 3 '1' = may raise and prune when due ('0': only purge, and go on with a
--       prune already begun), 4 a value counterFloor is known to have reached ('' = none)
-- Returns: {"pending":true} (a step was taken: call again) | {"raise":seq} | {"wait":ms} (the
--          raise or the prune is due at ms, or was not allowed) | {"done":true,"gone":bool}
--          (nothing left; gone: neither the context nor its seq counter exists, as after a prune)
-- Bounded: at most STEP (50) allocations, STEP lock names or INDEX_STEP (100) index keys per call; every
-- key is removed with UNLINK, so a large one (a stream, an index) is freed off the main thread.
-- Emits: nothing
check_key_base(ARGV[1])
local base = ARGV[1]
local INDEX_STEP = 100
local PENDING = '{"pending":true}'
-- Pops at most `count` members of the set `set` and unlinks the key `prefix .. member` of each
-- (a member that is a whole key, with prefix '', must lie in this context's slot). Returns whether
-- it popped any.
local function unlink_popped(set, prefix, count)
  local members = redis.call('SPOP', set, count)
  for _, member in ipairs(members) do
    local key = prefix .. member
    if prefix == '' then check_key_base(key) end
    redis.call('UNLINK', key)
  end
  return #members > 0
end

local function done()
  local gone = redis.call('EXISTS', base .. ':seq') == 0
  return '{"done":true,"gone":' .. tostring(gone) .. '}'
end

if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('DEL', KEYS[2])
  return '{"done":true,"gone":false}'
end
local t = redis.call('HMGET', KEYS[2], 'seq', 'purge', 'raisedAt', 'pruning', 'deletedAt')
if not t[1] then return done() end

if t[2] then
  local numbers = redis.call('ZRANGE', base .. ':allocs', 0, STEP - 1)
  if #numbers > 0 then
    for _, n in ipairs(numbers) do redis.call('UNLINK', base .. ':alloc:' .. n, base .. ':children:' .. n) end
    redis.call('ZREM', base .. ':allocs', unpack(numbers))
    return PENDING
  end
  if unlink_popped(base .. ':locks', base .. ':lock:', STEP) then return PENDING end
  if unlink_popped(base .. ':indexes', '', INDEX_STEP) then return PENDING end
  redis.call('UNLINK', base .. ':root', base .. ':children:root', base .. ':leases', base .. ':releasing', base .. ':allocs',
    base .. ':locks', base .. ':indexes', base .. ':ended')
  redis.call('HDEL', KEYS[2], 'purge')
  return PENDING
end

local half = math.floor(tonumber(ARGV[2]) / 2)
local function wait(at) return '{"wait":' .. int(at) .. '}' end
if not t[3] then
  if ARGV[4] ~= '' and tonumber(ARGV[4]) >= tonumber(t[1]) then
    redis.call('HSET', KEYS[2], 'raisedAt', int(now_ms()))
    return PENDING
  end
  local raise_at = tonumber(t[5]) + half
  if ARGV[3] ~= '1' or now_ms() < raise_at then return wait(raise_at) end
  return '{"raise":' .. t[1] .. '}'
end

if not t[4] then
  local due = tonumber(t[3]) + half
  if ARGV[3] ~= '1' or now_ms() < due then return wait(due) end
  redis.call('HSET', KEYS[2], 'pruning', '1')
end
if unlink_popped(base .. ':lockNames', base .. ':lockToken:', STEP) then return PENDING end
redis.call('UNLINK', base .. ':seq', base .. ':feed', base .. ':allocCount', base .. ':lockNames', KEYS[2])
return '{"done":true,"gone":true}'
