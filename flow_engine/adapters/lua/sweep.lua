-- Find lanes that hold events but have no live worker: no lock, and armed long ago or not at all
-- (a bridge or worker died between arming and running). Re-arms them and returns their numbers.
-- ARGV[1] lane key prefix   ARGV[2] number of lanes   ARGV[3] now ms   ARGV[4] stall ms
local stalled = {}
for lane = 0, tonumber(ARGV[2]) - 1 do
  local key = ARGV[1] .. lane
  if redis.call('LLEN', key) > 0 and redis.call('EXISTS', key .. ':lock') == 0 then
    local armed = redis.call('GET', key .. ':armed')
    if not armed or tonumber(ARGV[3]) - tonumber(armed) >= tonumber(ARGV[4]) then
      redis.call('SET', key .. ':armed', ARGV[3])
      table.insert(stalled, lane)
    end
  end
end
return stalled
