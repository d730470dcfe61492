-- Commit the Redis effects of the first N events of a lane and remove them, in one step, only while
-- the caller still holds the lane (DESIGN invariants 2 and 6). Emptying the lane disarms it, atomic
-- against the bridge's push, so an event pushed now always finds the lane armed or arms it itself.
-- KEYS[1] lane list   KEYS[2] lane lock   KEYS[3] lane armed flag   KEYS[4] timers zset   KEYS[5] stats hash
-- KEYS[6] set of lanes holding events
-- ARGV[1] lock token   ARGV[2] N   ARGV[3] lock ttl ms   ARGV[4] now ms   ARGV[5] timer wake channel
-- ARGV[6] JSON ops: ["x", stream, [field, value, ...]] XADD | ["w", key, value] set a wait
--                   ["u", key] clear a wait | ["z", due ms (string), member] add a timer | ["r", member] remove one
--                   ["h", field, n] add n to a counter of the stats hash (ignored:<reason>)
--                   ["d", key] delete a key (the seen mark of a dead-lettered message, so it can be re-published)
--                   ["f", shard, record (hex), first slot, last slot] forget a message id: remove its 12-byte
--                   record from those slots' hashes (fe:dedupe:h:{slot}:{shard of the slot}) and from the
--                   former layout's strings fe:dedupe:{slot}:{shard} (adapters/dedupe.py)
--                   ["q", key, item] hold a message (RPUSH) | ["o", key, n] release the n oldest (LPOP)
--                   ["a", key, score, member] ZADD to an index | ["b", key, member] ZREM from one (fe:handoffs)
-- ARGV[7] lane id (removed from the set of lanes holding events when the lane empties)
-- The stats hash keeps `waits`, the number of wait keys, for the pending-waits gauge, and `held`,
-- the messages held during delays, for `flow-engine status`.
-- Returns -1 when the lane is no longer held, else the events left in the lane (0: disarmed).
if redis.call('GET', KEYS[2]) ~= ARGV[1] then
  return -1
end
local earliest = nil
for _, op in ipairs(cjson.decode(ARGV[6])) do
  local kind = op[1]
  if kind == 'x' then
    redis.call('XADD', op[2], '*', unpack(op[3]))
  elseif kind == 'w' then
    if not redis.call('SET', op[2], op[3], 'GET') then
      redis.call('HINCRBY', KEYS[5], 'waits', 1)
    end
  elseif kind == 'u' then
    if redis.call('DEL', op[2]) == 1 then
      redis.call('HINCRBY', KEYS[5], 'waits', -1)
    end
  elseif kind == 'z' then
    local due = tonumber(op[2])
    redis.call('ZADD', KEYS[4], op[2], op[3])
    if earliest == nil or due < earliest then earliest = due end
  elseif kind == 'r' then
    redis.call('ZREM', KEYS[4], op[2])
  elseif kind == 'h' then
    redis.call('HINCRBY', KEYS[5], op[2], op[3])
  elseif kind == 'd' then
    redis.call('DEL', op[2])
  elseif kind == 'f' then
    local record = string.gsub(op[3], '..', function(hex) return string.char(tonumber(hex, 16)) end)
    local a, b, c, d = string.byte(record, 1, 4)
    local position = ((a * 256 + b) * 256 + c) * 256 + d
    for slot = tonumber(op[4]), tonumber(op[5]) do
      local shards = tonumber(redis.call('HGET', 'fe:dedupe:h:' .. slot, 's'))
      if shards then
        redis.call('HDEL', 'fe:dedupe:h:' .. slot .. ':' .. (position % shards), record)
      end
      local key = 'fe:dedupe:' .. slot .. ':' .. op[2]
      local blob = redis.call('GET', key)
      local start = 1
      while blob do
        local at = string.find(blob, record, start, true)
        if not at then break end
        if (at - 1) % 12 == 0 then
          redis.call('SET', key, string.sub(blob, 1, at - 1) .. string.sub(blob, at + 12), 'KEEPTTL')
          break
        end
        start = at + 1
      end
    end
  elseif kind == 'q' then
    redis.call('RPUSH', op[2], op[3])
    redis.call('HINCRBY', KEYS[5], 'held', 1)
  elseif kind == 'a' then
    redis.call('ZADD', op[2], op[3], op[4])
  elseif kind == 'b' then
    redis.call('ZREM', op[2], op[3])
  elseif kind == 'o' then
    local released = redis.call('LPOP', op[2], op[3])
    if released then redis.call('HINCRBY', KEYS[5], 'held', -#released) end
  end
end
if earliest ~= nil then
  local first = redis.call('ZRANGE', KEYS[4], 0, 0, 'WITHSCORES')
  if first[2] == nil or earliest <= tonumber(first[2]) then
    redis.call('PUBLISH', ARGV[5], string.format('%d', earliest))  -- the timer loop may sleep past it
  end
end
if tonumber(ARGV[2]) > 0 then
  redis.call('LTRIM', KEYS[1], ARGV[2], -1)
end
local left = redis.call('LLEN', KEYS[1])
if left == 0 then
  redis.call('DEL', KEYS[2], KEYS[3])
  redis.call('SREM', KEYS[6], ARGV[7])
  return 0
end
redis.call('PEXPIRE', KEYS[2], ARGV[3])
redis.call('SET', KEYS[3], ARGV[4])
return left
