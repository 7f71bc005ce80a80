#!lua
-- Ends a lease sweeper's claim on a context (take-due-2.lua) and files the context under when its
-- upkeep is next due, unless a writer filed it for earlier meanwhile (the earlier time stays).
-- KEYS: 1 the context's index shard's due index (keys.ts IndexKeys.due), 2 its claims
--       (IndexKeys.claimed); one hash tag
-- ARGV: 1 context id, 2 when upkeep is next due (ms; '' = nothing is)
-- Returns: 1
-- Emits: nothing
redis.call('ZREM', KEYS[2], ARGV[1])
if ARGV[2] ~= '' then redis.call('ZADD', KEYS[1], 'LT', ARGV[2], ARGV[1]) end
return 1
