-- Fairness between orgs: the bridge's read, in two stages (README "How it works").
-- 1. Take in the entries the bridge has just read from nf:incoming through the group (natively: an
--    XREADGROUP inside a script cost three times as much, turning every entry into Lua values): append
--    each id to its org's inbox (a list of stream ids) and acknowledge it in the same step, so nothing
--    is left pending and an entry is in exactly one inbox until handoff.lua takes it out, atomically
--    with pushing its events. The bridge gives the ids grouped by org, in stream order within each.
-- 2. Return the ids at the head of the orgs' inboxes, an equal share of ARGV[5] each (at least one),
--    for the orgs of a chunk of the set scanned from cursor ARGV[6]: one org's backlog never stands
--    in front of another org's entries. Nothing is taken out here, so a bridge that dies before
--    handing on fetches them again. ARGV[5] = 0: stage 1 alone.
-- KEYS[1] incoming stream   KEYS[2] bridge lease   KEYS[3] set of orgs whose inbox holds entries
-- ARGV[1] group   ARGV[2] lease token   ARGV[3] lease ttl ms   ARGV[4] inbox key prefix
-- ARGV[5] most entries out   ARGV[6] SSCAN cursor over the orgs with entries ("0" to start)
-- ARGV[7] number of orgs taken in, then per org: org, count N, N stream ids
-- Returns {1 when no inbox holds entries (idle) else 0, the cursor for the next read,
--          then per org fetched: org, {id, ...}}
if redis.call('GET', KEYS[2]) ~= ARGV[2] then
  return redis.error_reply('FENCED bridge lease lost')
end
redis.call('PEXPIRE', KEYS[2], ARGV[3])
local at = 8
for _ = 1, tonumber(ARGV[7]) do
  local org, count = ARGV[at], tonumber(ARGV[at + 1])
  if count > 0 then  -- at most a read's entries: unpack takes a few thousand values
    redis.call('RPUSH', ARGV[4] .. org, unpack(ARGV, at + 2, at + 1 + count))
    redis.call('SADD', KEYS[3], org)
    redis.call('XACK', KEYS[1], ARGV[1], unpack(ARGV, at + 2, at + 1 + count))
  end
  at = at + 2 + count
end

if redis.call('SCARD', KEYS[3]) == 0 then
  return {1, '0'}
end
local most_out = tonumber(ARGV[5])
if most_out == 0 then
  return {0, ARGV[6]}
end
-- The orgs served by this read: a chunk of the set from the bridge's cursor (SSCAN), so a read costs
-- about the same however many orgs wait (SSCAN visits 128 slots at least: a set of up to about 128
-- orgs is served whole by every read).
local cursor, orgs = ARGV[6], {}
repeat
  local scanned = redis.call('SSCAN', KEYS[3], cursor, 'COUNT', math.max(most_out, 128))
  cursor = scanned[1]
  for _, org in ipairs(scanned[2]) do orgs[#orgs + 1] = org end
until #orgs > 0 or cursor == '0'
local result = {0, cursor}
local share = math.max(math.floor(most_out / math.max(#orgs, 1)), 1)
for _, org in ipairs(orgs) do
  local ids = redis.call('LRANGE', ARGV[4] .. org, 0, share - 1)
  if #ids > 0 then
    result[#result + 1] = org
    result[#result + 1] = ids
  end
end
return result
