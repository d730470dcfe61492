-- Move one entry the bridge cannot read to the DLQ, atomically with taking it from where the bridge
-- read it: its org's inbox (as in handoff.lua) or nf:incoming's
-- group (XACK, an entry left pending before inboxes existed). Returns 1, or 0 when it was moved before.
-- KEYS[1] incoming stream   KEYS[2] dlq stream   KEYS[3] bridge lease   KEYS[4] the key it was read from
-- KEYS[5] set of orgs whose inbox holds entries
-- ARGV[1] group   ARGV[2] lease token   ARGV[3] stream id   ARGV[4] inbox key prefix
-- ARGV[5..] DLQ fields (name, value, ...)
if redis.call('GET', KEYS[3]) ~= ARGV[2] then
  return redis.error_reply('FENCED bridge lease lost')
end
local taken
if KEYS[4] == KEYS[1] then
  taken = redis.call('XACK', KEYS[1], ARGV[1], ARGV[3])
else
  taken = redis.call('LREM', KEYS[4], 1, ARGV[3])
  if redis.call('LLEN', KEYS[4]) == 0 then
    redis.call('SREM', KEYS[5], string.sub(KEYS[4], #ARGV[4] + 1))
  end
end
if taken == 1 then
  redis.call('XADD', KEYS[2], '*', unpack(ARGV, 5))
  return 1
end
return 0
