#!lua
-- The recorded outcome of an opId, read the way the write scripts read it (replayed_reply): an
-- outcome that a read found recorded (read-context-3.lua) is acknowledged through this, so that
-- with SWARM_REDIS_WAIT_REPLICAS it is confirmed on replicas like any other write.
-- KEYS: 1 op
-- ARGV: 1 fingerprint
-- Returns: {"replayed":true,"reply":<first reply>} | VALIDATION_FAILED (opId reuse) | false (no record)
-- Emits: nothing
return replayed_reply(KEYS[1], ARGV[1]) or false
