#!lua
-- Takes the contexts whose ledger upkeep is due for one lease sweeper's pass: each moves from the
-- due index to the claims, so that other instances' sweepers pass it by, and a writer that files
-- it meanwhile (ZADD LT into the due index, e.g. a release whose ended allocation will be due for
-- pruning) adds an entry that settle-due-2.lua keeps. A claim that runs out (its sweeper stopped
-- mid-way) makes the context due again, from then.
-- KEYS: 1 one index shard's due index (keys.ts IndexKeys.due), 2 its claims (IndexKeys.claimed);
--       one hash tag. due: context id -> when upkeep is due (ms); claims: context id -> when the
--       claim runs out (ms)
-- ARGV: 1 now (ms, Redis time), 2 when the claims taken now run out (ms), 3 most contexts taken
-- Returns: the context ids taken
-- Bounded: at most ARGV[3] claims returned to the due index and ARGV[3] contexts taken per call
-- Emits: nothing
local now, most = ARGV[1], tonumber(ARGV[3])
local lapsed = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'WITHSCORES', 'LIMIT', 0, most)
for i = 1, #lapsed, 2 do
  redis.call('ZADD', KEYS[1], 'LT', lapsed[i + 1], lapsed[i])
  redis.call('ZREM', KEYS[2], lapsed[i])
end
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, most)
for _, id in ipairs(due) do
  redis.call('ZREM', KEYS[1], id)
  redis.call('ZADD', KEYS[2], ARGV[2], id)
end
return due
