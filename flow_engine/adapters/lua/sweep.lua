-- Find lanes that hold events but have no live worker: no lock, and armed long ago or not at all
-- (a bridge or worker died between arming and running). Re-arms them and returns their ids.
-- Lanes found empty are dropped from the set of lanes that hold events.
-- KEYS[1] the set of lanes that hold events
-- ARGV[1] lane key prefix   ARGV[2] now ms   ARGV[3] stall ms
local stalled = {}
for _, lane in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local key = ARGV[1] .. lane
  if redis.call('LLEN', key) == 0 then
    redis.call('SREM', KEYS[1], lane)
  elseif redis.call('EXISTS', key .. ':lock') == 0 then
    local armed = redis.call('GET', key .. ':armed')
    if not armed or tonumber(ARGV[2]) - tonumber(armed) >= tonumber(ARGV[3]) then
      redis.call('SET', key .. ':armed', ARGV[2])
      table.insert(stalled, lane)
    end
  end
end
return stalled
