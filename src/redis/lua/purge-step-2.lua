-- Takes the next bounded step of what is left of a deleted context, as its tombstone
-- (keys.ts tombstone, written by delete-context-7.lua) says, in this order:
--   purge   its ledger's keys: STEP allocation hashes and their children sets, then STEP locks,
--           then INDEX_STEP read index keys listed in <base>:indexes, then the fixed ledger keys
--           (root, children:root, leases, releasing, allocs, locks, indexes);
--   raise   counterFloor (a key of another slot, raised by raise-floor-1.lua) must be at least
--           the tombstone's seq: answered as {"raise":seq} until a call passes a floor that is,
--           which records raisedAt (Redis time);
--   prune   once raisedAt is a retention old: STEP lock token counters (<base>:lockNames), then
--           the seq counter, the feed stream (UNLINK: freed off the main thread), the allocation
--           counter, <base>:lockNames and the tombstone.
-- A context that exists again (its meta is back) has nothing left to do: the tombstone goes.
-- KEYS: 1 meta, 2 tombstone
-- ARGV: 1 the key base (keys.ts contextBase), checked to carry KEYS[1]'s hash tag: the script
--       builds the keys listed above from it (_2-ledger.lua lays them out), 2 deleted-context
--       retention (ms), 3 '1' = may begin a prune that is due ('0': only go on with one begun),
--       4 a value counterFloor is known to have reached ('' = none)
-- Returns: {"pending":true} (a step was taken: call again) | {"raise":seq} | {"wait":ms} (the
--          prune is due at ms, or was not allowed to begin) | {"done":true,"gone":bool} (nothing
--          left; gone: neither the context nor its seq counter exists, as after a prune)
-- Bounded: at most STEP (50) allocations, STEP lock names or INDEX_STEP index keys per call; every
-- key is removed with UNLINK, so a large one (a stream, an index) is freed off the main thread.
-- Emits: nothing
check_key_base(ARGV[1])
local base = ARGV[1]
local INDEX_STEP = 10
local PENDING = '{"pending":true}'
local function done()
  local gone = redis.call('EXISTS', base .. ':seq') == 0
  return '{"done":true,"gone":' .. tostring(gone) .. '}'
end

if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('DEL', KEYS[2])
  return '{"done":true,"gone":false}'
end
local t = redis.call('HMGET', KEYS[2], 'seq', 'purge', 'raisedAt', 'pruning')
if not t[1] then return done() end

if t[2] then
  local numbers = redis.call('ZRANGE', base .. ':allocs', 0, STEP - 1)
  if #numbers > 0 then
    for _, n in ipairs(numbers) do redis.call('UNLINK', base .. ':alloc:' .. n, base .. ':children:' .. n) end
    redis.call('ZREM', base .. ':allocs', unpack(numbers))
    return PENDING
  end
  local names = redis.call('SPOP', base .. ':locks', STEP)
  if #names > 0 then
    for _, name in ipairs(names) do redis.call('UNLINK', base .. ':lock:' .. name) end
    return PENDING
  end
  local indexes = redis.call('SPOP', base .. ':indexes', INDEX_STEP)
  if #indexes > 0 then
    for _, key in ipairs(indexes) do
      check_key_base(key)
      redis.call('UNLINK', key)
    end
    return PENDING
  end
  redis.call('UNLINK', base .. ':root', base .. ':children:root', base .. ':leases', base .. ':releasing', base .. ':allocs',
    base .. ':locks', base .. ':indexes')
  redis.call('HDEL', KEYS[2], 'purge')
  return PENDING
end

if not t[3] then
  if ARGV[4] == '' or tonumber(ARGV[4]) < tonumber(t[1]) then return '{"raise":' .. t[1] .. '}' end
  redis.call('HSET', KEYS[2], 'raisedAt', int(now_ms()))
  return PENDING
end

if not t[4] then
  local due = tonumber(t[3]) + tonumber(ARGV[2])
  if ARGV[3] ~= '1' or now_ms() < due then return '{"wait":' .. int(due) .. '}' end
  redis.call('HSET', KEYS[2], 'pruning', '1')
end
local names = redis.call('SPOP', base .. ':lockNames', STEP)
if #names > 0 then
  for _, name in ipairs(names) do redis.call('UNLINK', base .. ':lockToken:' .. name) end
  return PENDING
end
redis.call('UNLINK', base .. ':seq', base .. ':feed', base .. ':allocCount', base .. ':lockNames', KEYS[2])
return '{"done":true,"gone":true}'
