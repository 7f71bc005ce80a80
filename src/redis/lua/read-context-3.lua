#!lua flags=no-writes
-- Reads a context's head in one round trip, sending the document only when the caller's cached
-- version (named by its head token) is not current, and the recorded reply of an opId if there is one.
-- KEYS: 1 meta, 2 seq, 3 op (may be a key that never exists)
-- ARGV: 1 head token of the cached version ('' = none, '-' = never send the document), 2 fingerprint
-- Returns: [version|false, seq, createdAt, updatedAt, updatedBy, doc|false, recorded reply|false, head]
-- Emits: nothing
local m = redis.call('HMGET', KEYS[1], 'version', 'createdAt', 'updatedAt', 'updatedBy', 'head')
local seq = tonumber(redis.call('GET', KEYS[2]) or '0')
local recorded = recorded_reply(KEYS[3], ARGV[2]) or false
if not m[1] then return { false, seq, false, false, false, false, recorded } end
local doc = false
if ARGV[1] ~= '-' and m[5] ~= ARGV[1] then doc = document_json(KEYS[1], redis.call('HGET', KEYS[1], 'order')) end
return { tonumber(m[1]), seq, m[2], m[3], m[4], doc, recorded, m[5] }
