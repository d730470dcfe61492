-- Give a wait stored by an older engine its expiry timer, only if the wait is still what the caller
-- read (a worker may have changed it since: then it is left alone, the worker's state wins).
-- KEYS[1] wait key   KEYS[2] timers zset
-- ARGV[1] the wait as read   ARGV[2] the wait with its expiry   ARGV[3] due ms   ARGV[4] timer member
-- Returns 1 if upgraded, else 0.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
redis.call('SET', KEYS[1], ARGV[2], 'KEEPTTL')
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[4])
return 1
