-- Hand entries on to their lanes, atomically with taking them from where the bridge read them
-- (DESIGN invariant 1): out of their org's inbox (intake.lua; LREM finds them at its head, as the
-- bridge fetched them from there) or, for entries left pending in nf:incoming by a bridge of before
-- inboxes, from the group (XACK). An entry that is no longer there (LREM or XACK returns 0) was
-- handed on before (a re-read after a crash):
-- it is skipped. An org whose inbox is left empty is taken out of the set of orgs with inboxes.
-- KEYS[1] incoming stream   KEYS[2] bridge lease   KEYS[3] stats hash   KEYS[4] set of lanes holding events
-- KEYS[5] set of orgs whose inbox holds entries
-- ARGV[1] group   ARGV[2] lease token   ARGV[3] lease ttl ms   ARGV[4] dedupe slot s   ARGV[5] now ms
-- ARGV[6] lane key prefix   ARGV[7] current dedupe slot   ARGV[8] inbox key prefix
-- ARGV[9..] per entry: stream id, the key it was read from (nf:incoming or an inbox), event count N,
--   then N times lane, item, seen
--   or "" (no WhatsApp message id), or for N = 0 the reason the entry is ignored ("receipt",
--   "forged-resume"), counted in the stats hash as ignored:<reason> (flat arguments: the items are JSON)
-- A seen argument is 2 bytes of shard, a 12-byte record, then maybe a key of the former layout
-- (adapters/dedupe.py): a message is a duplicate when its record is in fe:dedupe:{slot}:{shard} of the
-- last 3 slots, or the former key exists; else its record is appended to the current slot.
-- Returns {events pushed, duplicates dropped, receipts, forged resumes,
--          ids of the lanes that were armed (need a worker)...}
if redis.call('GET', KEYS[2]) ~= ARGV[2] then
  return redis.error_reply('FENCED bridge lease lost')
end
redis.call('PEXPIRE', KEYS[2], ARGV[3])
local slot_s, slot = tonumber(ARGV[4]), tonumber(ARGV[7])
local function holds(blob, record)
  local start = 1
  while true do
    local at = string.find(blob, record, start, true)
    if not at then return false end
    if (at - 1) % 12 == 0 then return true end
    start = at + 1
  end
end
local function seen_before(seen)
  local shard = ':' .. (string.byte(seen, 1) * 256 + string.byte(seen, 2))
  local record = string.sub(seen, 3, 14)
  local blobs = redis.call('MGET', 'fe:dedupe:' .. (slot - 2) .. shard, 'fe:dedupe:' .. (slot - 1) .. shard,
    'fe:dedupe:' .. slot .. shard)
  for n = 1, 3 do
    if blobs[n] and holds(blobs[n], record) then return true end
  end
  if #seen > 14 and redis.call('EXISTS', string.sub(seen, 15)) == 1 then return true end
  local key = 'fe:dedupe:' .. slot .. shard
  if redis.call('APPEND', key, record) == 12 then
    redis.call('EXPIRE', key, 3 * slot_s)
  end
  return false
end
local result = {0, 0, 0, 0}
local inboxes = {}
-- Per lane of this call, its items in order (one RPUSH each at the end) and whether it is armed
-- (one SET NX each): fewer calls into Redis per event.
local pushes, lanes = {}, {}
local i = 9
while i <= #ARGV do
  local source = ARGV[i + 1]
  local acked
  if source == KEYS[1] then
    acked = redis.call('XACK', KEYS[1], ARGV[1], ARGV[i]) == 1
  else
    acked = redis.call('LREM', source, 1, ARGV[i]) == 1
    inboxes[source] = true
  end
  local count = tonumber(ARGV[i + 2])
  if count == 0 then
    if acked then
      local reason = ARGV[i + 3]
      redis.call('HINCRBY', KEYS[3], 'ignored:' .. reason, 1)
      if reason == 'forged-resume' then result[4] = result[4] + 1 else result[3] = result[3] + 1 end
    end
    i = i + 4
  else
    for j = 0, count - 1 do
      local lane, item, seen = ARGV[i + 3 + 3 * j], ARGV[i + 4 + 3 * j], ARGV[i + 5 + 3 * j]
      if not acked then
        -- handed on before (read again after a crash): skip
      elseif seen ~= '' and seen_before(seen) then
        result[2] = result[2] + 1
      else
        local items = pushes[lane]
        if not items then
          items = {}
          pushes[lane] = items
          lanes[#lanes + 1] = lane
        end
        items[#items + 1] = item
        result[1] = result[1] + 1
      end
    end
    i = i + 3 + 3 * count
  end
end
for _, lane in ipairs(lanes) do
  local key = ARGV[6] .. lane
  local items = pushes[lane]
  for start = 1, #items, 1000 do  -- unpack takes a few thousand values at most
    redis.call('RPUSH', key, unpack(items, start, math.min(start + 999, #items)))
  end
  if redis.call('SET', key .. ':armed', ARGV[5], 'NX') then
    redis.call('SADD', KEYS[4], lane)
    table.insert(result, lane)
  end
end
for inbox in pairs(inboxes) do
  if redis.call('LLEN', inbox) == 0 then
    redis.call('SREM', KEYS[5], string.sub(inbox, #ARGV[8] + 1))
  end
end
if result[2] > 0 then
  redis.call('HINCRBY', KEYS[3], 'ignored:duplicate', result[2])
end
return result
