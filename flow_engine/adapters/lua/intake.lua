-- Fairness between orgs: the bridge's read, in two stages (README "How it works").
-- 1. Take new entries of nf:incoming in through the group: append each one's id to its org's inbox
--    (a list of stream ids) and acknowledge it in the same step, so nothing is left pending and an
--    entry is in exactly one inbox until handoff.lua takes it out, atomically with pushing its events.
--    Cheap per entry (an id; no parsing, no copy), so it keeps up with a blast. The org is the
--    entry's `org_id` field as bytes; without one, or longer than ARGV[6] bytes (never a valid org),
--    the entry goes to the inbox of org "" (and so to the DLQ).
-- 2. Return the ids at the head of the orgs' inboxes, an equal share of ARGV[9] each (at least one),
--    for the orgs of a chunk of the set scanned from cursor ARGV[10]: one org's backlog never stands
--    in front of another org's entries. The bridge reads their fields from nf:incoming itself
--    (XRANGE, natively: cheaper than through Lua). Nothing is taken out here, so a bridge that dies
--    before handing on fetches them again.
--    An org whose lanes already hold ARGV[13] events or more (a backlog the workers have not caught
--    up with) gets nothing this read: its entries wait in its inbox (an id each) instead of the lanes,
--    and the bridge's CPU goes to the workers instead of running ahead of them. While another org is
--    having conversations (its mark in KEYS[4] is younger than ARGV[16] ms), the bound is ARGV[14]:
--    workers then take the backlog in smaller batches, and handing more of it on would only take the
--    CPU the other org's messages need. An org's own mark does not count.
-- Stage 1 stops after ARGV[8] bytes of fields, so a call stays short whatever the entries' size.
-- KEYS[1] incoming stream   KEYS[2] bridge lease   KEYS[3] set of orgs whose inbox holds entries
-- KEYS[4] orgs having conversations (ZSET, org as in lane ids -> last mark, ms)
-- ARGV[1] group   ARGV[2] consumer   ARGV[3] lease token   ARGV[4] lease ttl ms   ARGV[5] most entries in
-- ARGV[6] longest org id (bytes)   ARGV[7] inbox key prefix   ARGV[8] most bytes   ARGV[9] most entries out
-- ARGV[10] SSCAN cursor over the orgs with entries ("0" to start)
-- ARGV[11] lane key prefix   ARGV[12] lanes per org   ARGV[13] most events in an org's lanes (0: no limit)
-- ARGV[14] the same while another org is having conversations (used only when ARGV[13] > 0; 0 here holds
--   back every backlog)   ARGV[15] now ms   ARGV[16] how long a mark of KEYS[4] counts, ms
-- Returns {entries taken in, the last id taken in (when idle: the group's last delivered id), the
--          cursor for the next read, orgs held back (their lanes are full),
--          then per org fetched: org, {id, ...}}
if redis.call('GET', KEYS[2]) ~= ARGV[3] then
  return redis.error_reply('FENCED bridge lease lost')
end
redis.call('PEXPIRE', KEYS[2], ARGV[4])
local most_in, longest, most_bytes = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[8])
local taken, size, last = 0, 0, false
local known = {}
while taken < most_in and size < most_bytes do
  local reply = redis.call('XREADGROUP', 'GROUP', ARGV[1], ARGV[2], 'COUNT', math.min(100, most_in - taken),
    'STREAMS', KEYS[1], '>')
  if not reply then break end
  local ids, by_org, orgs = {}, {}, {}
  for n, entry in ipairs(reply[1][2]) do
    local id, fields = entry[1], entry[2]
    local org = ''
    for i = 1, #fields, 2 do  -- a repeated field counts by its last value, as the bridge reads it
      size = size + #fields[i] + #fields[i + 1]
      if fields[i] == 'org_id' then org = fields[i + 1] end
    end
    if #org > longest then org = '' end
    local list = by_org[org]
    if not list then
      list = {}
      by_org[org] = list
      orgs[#orgs + 1] = org
    end
    list[#list + 1] = id
    ids[n] = id
  end
  for _, org in ipairs(orgs) do  -- one RPUSH per org and read, in stream order within the org
    redis.call('RPUSH', ARGV[7] .. org, unpack(by_org[org]))
    if not known[org] then
      known[org] = true
      redis.call('SADD', KEYS[3], org)
    end
  end
  redis.call('XACK', KEYS[1], ARGV[1], unpack(ids))
  taken, last = taken + #ids, ids[#ids]
end

if redis.call('SCARD', KEYS[3]) == 0 then  -- idle: the bridge waits for entries after the last one
  for _, group in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
    for i = 1, #group, 2 do
      if group[i] == 'name' and group[i + 1] ~= ARGV[1] then break end
      if group[i] == 'last-delivered-id' then return {0, group[i + 1], '0', 0} end
    end
  end
  return {0, '0-0', '0', 0}
end
-- The orgs served by this read: a chunk of the set from the bridge's cursor (SSCAN), so a read costs
-- about the same however many orgs wait (SSCAN visits 128 slots at least: a set of up to about 128
-- orgs is served whole by every read).
local most_out = tonumber(ARGV[9])
local cursor, orgs = ARGV[10], {}
repeat
  local scanned = redis.call('SSCAN', KEYS[3], cursor, 'COUNT', math.max(most_out, 128))
  cursor = scanned[1]
  for _, org in ipairs(scanned[2]) do orgs[#orgs + 1] = org end
until #orgs > 0 or cursor == '0'
local result = {taken, last, cursor, 0}
local share = math.max(math.floor(most_out / math.max(#orgs, 1)), 1)
local lanes, most_queued = tonumber(ARGV[12]), tonumber(ARGV[13])
local conversing = most_queued > 0 and
  redis.call('ZRANGEBYSCORE', KEYS[4], tonumber(ARGV[15]) - tonumber(ARGV[16]), '+inf', 'LIMIT', 0, 2) or {}
local function lanes_full(org)
  local escaped = org:gsub('%%', '%%25'):gsub(':', '%%3A')  -- as Keys.part escapes lane ids
  local most = most_queued
  for _, other in ipairs(conversing) do
    if other ~= escaped then most = tonumber(ARGV[14]) end
  end
  local lane = ARGV[11] .. escaped .. ':'
  local queued = 0
  for n = 0, lanes - 1 do queued = queued + redis.call('LLEN', lane .. n) end
  return queued >= most
end
for _, org in ipairs(orgs) do
  local ids = {}
  if most_queued > 0 and redis.call('LLEN', ARGV[7] .. org) >= share and lanes_full(org) then
    result[4] = result[4] + 1  -- a backlog, and its lanes are full: it waits
  else
    ids = redis.call('LRANGE', ARGV[7] .. org, 0, share - 1)
  end
  if #ids > 0 then
    result[#result + 1] = org
    result[#result + 1] = ids
  end
end
return result
