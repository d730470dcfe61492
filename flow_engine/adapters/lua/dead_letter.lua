-- Move one nf:incoming entry the bridge cannot read to the DLQ, atomically with its XACK.
-- KEYS[1] incoming stream   KEYS[2] dlq stream   KEYS[3] bridge lease
-- ARGV[1] group   ARGV[2] lease token   ARGV[3] stream id   ARGV[4..] DLQ fields (name, value, ...)
if redis.call('GET', KEYS[3]) ~= ARGV[2] then
  return redis.error_reply('FENCED bridge lease lost')
end
if redis.call('XACK', KEYS[1], ARGV[1], ARGV[3]) == 1 then
  redis.call('XADD', KEYS[2], '*', unpack(ARGV, 4))
  return 1
end
return 0
