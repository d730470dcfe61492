-- Convert the previous engine's wait values and timers into the current formats, each at most once
-- (`flow-engine state migrate` and the timer loop's start may both try).
-- KEYS[1] timers zset   KEYS[2] stats hash
-- ARGV[1] JSON ops: ["t", old member, due ms (string), new member] replace a timer, only while the old
--                   member is still there | ["w", key, expected value ("" = absent), new value,
--                   "keepttl"|"persist"?] set a wait, only while the key holds the expected value (an
--                   old wait keeps its TTL, or loses it with "persist")
--                   | ["d", old member] drop a timer that cannot be converted
-- Returns the number of ops applied.
local applied = 0
for _, op in ipairs(cjson.decode(ARGV[1])) do
  if op[1] == 't' then
    if redis.call('ZREM', KEYS[1], op[2]) == 1 then
      redis.call('ZADD', KEYS[1], op[3], op[4])
      applied = applied + 1
    end
  elseif op[1] == 'd' then
    applied = applied + redis.call('ZREM', KEYS[1], op[2])
  elseif op[1] == 'w' then
    local current = redis.call('GET', op[2])
    if op[3] == '' and not current then
      redis.call('SET', op[2], op[4])
      redis.call('HINCRBY', KEYS[2], 'waits', 1)
      applied = applied + 1
    elseif op[3] ~= '' and current == op[3] then
      if op[5] == 'persist' then
        redis.call('SET', op[2], op[4])
      else
        redis.call('SET', op[2], op[4], 'KEEPTTL')
      end
      redis.call('HINCRBY', KEYS[2], 'waits', 1)  -- the previous engine's waits were not counted
      applied = applied + 1
    end
  end
end
return applied
