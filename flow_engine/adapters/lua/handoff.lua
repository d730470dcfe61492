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
-- A seen argument is 2 bytes of a former shard, a 12-byte record, then maybe a key of the former layout
-- (adapters/dedupe.py): a message is a duplicate when its record is a field of the hash
-- fe:dedupe:h:{slot}:{record's shard among the slot's shards} of one of the last 3 slots (or, while
-- the former layouts may be left, in the string fe:dedupe:{slot}:{shard} or the former key exists);
-- else it is added to the current slot's hash. Each slot's shard count is fixed when the slot starts,
-- from the ids its predecessor remembered (about 32 a hash: small hashes stay listpacks, ~16 bytes an id).
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
-- Seconds until 3 slots after this one started (by the bridge's clock, ARGV[5]): a slot's hashes go
-- once no look-up reads them.
local expire_s = math.min(math.max((slot + 3) * slot_s - math.floor(tonumber(ARGV[5]) / 1000), 1), 3 * slot_s)
-- The last 3 slots' hashes: name prefix and shard count (nil: a slot that remembered nothing), read once
-- a call; the current slot's count is fixed on its first id (HSETNX: a dead bridge's choice stands).
local slots = {}
for age = 2, 0, -1 do
  local meta = 'fe:dedupe:h:' .. (slot - age)
  local shards = tonumber(redis.call('HGET', meta, 's'))
  if not shards and age == 0 then
    local before = tonumber(redis.call('HGET', 'fe:dedupe:h:' .. (slot - 1), 'n') or '0')
    -- 32 ids a hash at the same rate (a look-up scans a listpack), 16,384 to 4M shards
    local wanted = math.min(math.max(math.ceil(before / 32), 16384), 4194304)
    redis.call('HSETNX', meta, 's', wanted)
    redis.call('EXPIRE', meta, expire_s)
    shards = tonumber(redis.call('HGET', meta, 's'))
  end
  if shards then slots[#slots + 1] = {meta .. ':', shards} end
end
local current, added = slots[#slots], 0
local function seen_before(seen)
  local record = string.sub(seen, 3, 14)
  local a, b, c, d = string.byte(record, 1, 4)
  local position = ((a * 256 + b) * 256 + c) * 256 + d
  for n = 1, #slots do
    if redis.call('HEXISTS', slots[n][1] .. (position % slots[n][2]), record) == 1 then return true end
  end
  if #seen > 14 then  -- the former layouts: strings of records by slot and shard, a key per id
    local shard = ':' .. (string.byte(seen, 1) * 256 + string.byte(seen, 2))
    local blobs = redis.call('MGET', 'fe:dedupe:' .. (slot - 2) .. shard, 'fe:dedupe:' .. (slot - 1) .. shard,
      'fe:dedupe:' .. slot .. shard)
    for n = 1, 3 do
      if blobs[n] and holds(blobs[n], record) then return true end
    end
    if redis.call('EXISTS', string.sub(seen, 15)) == 1 then return true end
  end
  local key = current[1] .. (position % current[2])
  redis.call('HSET', key, record, '')
  redis.call('EXPIRE', key, expire_s)
  added = added + 1
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
if added > 0 then
  redis.call('HINCRBY', 'fe:dedupe:h:' .. slot, 'n', added)
end
return result
