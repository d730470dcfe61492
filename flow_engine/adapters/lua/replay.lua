-- Re-inject one DLQ entry into nf:incoming, at most once: it leaves the DLQ in the same step.
-- KEYS[1] dlq stream   KEYS[2] incoming stream
-- ARGV[1] dlq entry id   ARGV[2..] fields of the new nf:incoming entry (name, value, ...)
-- Returns the new entry's id, or false when the DLQ entry is gone (replayed or purged meanwhile).
if redis.call('XDEL', KEYS[1], ARGV[1]) == 0 then
  return false
end
return redis.call('XADD', KEYS[2], '*', unpack(ARGV, 2))
