-- Shared by every script (scripts.ts prepends the "_" files in name order). Replies are JSON strings:
--   {"ok":true, ...}              the change was applied
--   {"error":"<CODE>", ...}        a refusal; CODE is one of src/errors.ts ErrorCode
--   {"retry":true, ...}            the caller's base version moved; recompute and call again
--   {"pending":true}               one step of a longer change is done; call again, same op record
-- Every check runs before the first write: Lua does not roll back a half-done script.

-- The hash tag of a key as Redis Cluster reads it: what lies between its first '{' and the next
-- '}', or the whole key when there is no such pair or it is empty.
local function hash_tag(key)
  local open = string.find(key, '{', 1, true)
  local close = open and string.find(key, '}', open + 1, true)
  if not close or close == open + 1 then return key end
  return string.sub(key, open + 1, close - 1)
end

-- Scripts that build keys from a key base (`<prefix>:{ctx:<id>}`, keys.ts contextBase) or take a
-- key in ARGV check it first: what they touch then lies in the slot of their declared KEYS[1],
-- as Redis Cluster requires. A mismatch is a bug in the caller, raised as a script error.
local function check_key_base(base)
  if hash_tag(base) ~= hash_tag(KEYS[1]) then
    error('key ' .. base .. ' is outside the hash tag of ' .. KEYS[1])
  end
end

local function reply_error(code, message, details)
  local t = details or {}
  t.error = code
  t.message = message
  return cjson.encode(t)
end

-- Every write is recorded under an opId (src/store/script-replies.ts opRecord): the client's,
-- fingerprinted, or one generated for the single script call, with an empty fingerprint, so that
-- the Redis client resending the call after a reconnect gets the first reply back.
-- The recorded outcome of an opId wrapped as {"replayed":true,"reply":<first reply>}, or nil.
-- A different fingerprint under the same opId is a client bug: refuse it instead of returning
-- an outcome that belongs to another operation.
local function recorded_reply(op_key, fingerprint)
  local rec = redis.call('HMGET', op_key, 'fingerprint', 'reply')
  if not rec[1] then return nil end
  if rec[1] ~= fingerprint then
    return reply_error('VALIDATION_FAILED', 'opId was already used for a different operation', { path = 'opId' })
  end
  return '{"replayed":true,"reply":' .. rec[2] .. '}'
end

-- recorded_reply for a write script: a replay also sets the record's fingerprint again (the same
-- value), so that a replay is a write in its own right, replicated after the record, and a WAIT
-- after it (SWARM_REDIS_WAIT_REPLICAS, src/redis/scripts.ts) confirms that replicas hold the
-- record, whichever connection wrote it first. (Redis 7.0 has WAIT cover the replication offset
-- at the connection's last command of any kind; this does not rely on that.)
local function replayed_reply(op_key, fingerprint)
  local previous = recorded_reply(op_key, fingerprint)
  if previous and previous:sub(1, 12) == '{"replayed":' then redis.call('HSET', op_key, 'fingerprint', fingerprint) end
  return previous
end

local function record_reply(op_key, fingerprint, reply, ttl_seconds)
  redis.call('HSET', op_key, 'fingerprint', fingerprint, 'reply', reply)
  redis.call('EXPIRE', op_key, ttl_seconds)
end

-- Largest entry (its fields and values, lengths summed, as FeedEntry.bytes counts them) that its
-- wake-up carries; a larger one's wake-up only names it (src/feed/feed-hub.ts). Mirrored by
-- WAKE_UP_ENTRY_BYTES in src/store/feed-reader.ts.
local WAKE_UP_ENTRY_BYTES = 8192

-- Appends one change to the feed at the next seq, trims it to the retention and wakes readers
-- with '<contextId> <seq> <entry>', the entry being the JSON array of its fields and values as
-- strings (as XADD stores them), or with '<contextId> <seq>' when the entry is larger than
-- WAKE_UP_ENTRY_BYTES. fields: flat list of field, value pairs. Returns the new seq.
local function append_change(seq_key, feed_key, retention, channel, context_id, fields)
  local seq = redis.call('INCR', seq_key)
  redis.call('XADD', feed_key, 'MAXLEN', retention, seq .. '-0', unpack(fields))
  local strings, size = {}, 0
  for i, v in ipairs(fields) do
    local s = tostring(v)
    strings[i] = s
    size = size + #s
  end
  if size <= WAKE_UP_ENTRY_BYTES then
    redis.call('PUBLISH', channel, context_id .. ' ' .. seq .. ' ' .. cjson.encode(strings))
  else
    redis.call('PUBLISH', channel, context_id .. ' ' .. seq)
  end
  return seq
end

-- Calls `command` on `key` with args[from..], 1000 at a time (unpack() takes at most a few
-- thousand values at once; 1000 keeps field-value pairs together), and returns the replies of
-- every call, in order, as one list (HMGET's values; the counts of others).
local function call_in_chunks(command, key, args, from)
  local replies = {}
  for i = from, #args, 1000 do
    local reply = redis.call(command, key, unpack(args, i, math.min(i + 999, #args)))
    if type(reply) == 'table' then
      for _, value in ipairs(reply) do replies[#replies + 1] = value end
    else
      replies[#replies + 1] = reply
    end
  end
  return replies
end

-- A document is stored by its top-level members (src/store/document-parts.ts): in its meta hash,
-- field '.' .. <member name as JSON> holds the member's value as JSON, and 'order' the members'
-- JSON names in document order, one per line ('' for {}). Its JSON text is those put together.
-- The JSON text of the document whose members are in order `order`, read from `meta_key`, or
-- found first in `known` (name -> JSON, false: absent).
local function document_json(meta_key, order, known)
  if order == '' then return '{}' end
  local names, out = {}, {}
  for name in string.gmatch(order, '[^\n]+') do names[#names + 1] = name end
  local missing = {}
  for i, name in ipairs(names) do
    if known == nil or known[name] == nil then missing[#missing + 1] = i end
  end
  local fields = {}
  for j, i in ipairs(missing) do fields[j] = '.' .. names[i] end
  local got = call_in_chunks('HMGET', meta_key, fields, 1)
  local values = {}
  for j, i in ipairs(missing) do values[i] = got[j] end
  for i, name in ipairs(names) do
    local value = values[i] or (known and known[name])
    out[#out + 1] = name .. ':' .. value
  end
  return '{' .. table.concat(out, ',') .. '}'
end

-- Writes a document's changed members (ARGV from `first` on: name JSON, value JSON or '' for a
-- removed member) and its member order (nil: unchanged) as version `version`; into `snapshots`
-- goes what `version` replaced, from which earlier versions are put together again (read-snapshot):
-- field <version> lists the changed names (one per line), <version>.<name> holds a changed
-- member's value before (absent: it did not exist), <version>o the order before when it changed.
local function write_members(meta_key, snapshots_key, version, first, order)
  local names = {}
  for i = first, #ARGV, 2 do
    local field = '.' .. ARGV[i]
    if snapshots_key then
      local before = redis.call('HGET', meta_key, field)
      if before then redis.call('HSET', snapshots_key, version .. field, before) end
    end
    if ARGV[i + 1] == '' then redis.call('HDEL', meta_key, field) else redis.call('HSET', meta_key, field, ARGV[i + 1]) end
    names[#names + 1] = ARGV[i]
  end
  if snapshots_key then redis.call('HSET', snapshots_key, version, table.concat(names, '\n')) end
  if order then
    if snapshots_key then redis.call('HSET', snapshots_key, version .. 'o', redis.call('HGET', meta_key, 'order')) end
    redis.call('HSET', meta_key, 'order', order)
  end
end

-- Removes from `snapshots` what version `version` replaced (see write_members): once the version
-- before it is no longer retained, nothing needs it.
local function drop_replaced(snapshots_key, version)
  local names = redis.call('HGET', snapshots_key, version)
  if not names then return end
  local fields = { version, version .. 'o' }
  for name in string.gmatch(names, '[^\n]+') do fields[#fields + 1] = version .. '.' .. name end
  call_in_chunks('HDEL', snapshots_key, fields, 1)
end

-- Replaces a settings hash with "field value field value ..." (see src/store/ledger-settings.ts);
-- '-' leaves it as it is (the change did not touch those settings).
local function store_settings(key, flat)
  if flat == '-' then return end
  redis.call('DEL', key)
  local items = {}
  for word in string.gmatch(flat, '%S+') do items[#items + 1] = word end
  if #items > 0 then redis.call('HSET', key, unpack(items)) end
end
