-- Trim a stream of what nobody needs any more, safely (issue: Redis memory stays bounded). An entry
-- goes only when it is older than the retention AND every consumer group of the stream has
-- acknowledged it (read and not pending) AND the engine still needs nothing of it: an org's inbox
-- holds ids of entries not yet handed on (their fields are read from here), and a lane head may
-- still need its original entry for a DLQ copy. Trimming is approximate (`~`): whole nodes only, so it
-- may keep a few entries more, never one less. A stream without consumer groups keeps at most
-- ARGV[2] entries (0: never trimmed).
-- KEYS[1] stream   KEYS[2] set of lanes holding events   KEYS[3] set of orgs with inboxes (both read
-- only when ARGV[4] is "1")
-- ARGV[1] cutoff id (now - retention)   ARGV[2] max length without groups   ARGV[3] lane key prefix
-- ARGV[4] "1": keep what inboxes and lane heads hold (nf:incoming)   ARGV[5] inbox key prefix
-- Returns {entries trimmed, the id trimming stopped before or false}
if redis.call('EXISTS', KEYS[1]) == 0 then
  return {0, false}
end
local function parse(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(seq)
end
local function less(a, b)
  local a_ms, a_seq = parse(a)
  local b_ms, b_seq = parse(b)
  return a_ms < b_ms or (a_ms == b_ms and a_seq < b_seq)
end
local groups = redis.call('XINFO', 'GROUPS', KEYS[1])
if #groups == 0 then
  local maxlen = tonumber(ARGV[2])
  if maxlen == 0 then return {0, false} end
  return {redis.call('XTRIM', KEYS[1], 'MAXLEN', '~', maxlen), false}
end
local keep = ARGV[1]
for _, group in ipairs(groups) do
  local info = {}
  for i = 1, #group, 2 do info[group[i]] = group[i + 1] end
  -- entries after last-delivered-id are unread: keep them (MINID keeps the id given)
  if less(info['last-delivered-id'], keep) then keep = info['last-delivered-id'] end
  if tonumber(info['pending']) > 0 then
    local oldest = redis.call('XPENDING', KEYS[1], info['name'])[2]
    if oldest and less(oldest, keep) then keep = oldest end
  end
end
if ARGV[4] == '1' then
  for _, org in ipairs(redis.call('SMEMBERS', KEYS[3])) do
    local head = redis.call('LINDEX', ARGV[5] .. org, 0)
    if head and less(head, keep) then keep = head end
  end
  for _, lane in ipairs(redis.call('SMEMBERS', KEYS[2])) do
    local head = redis.call('LINDEX', ARGV[3] .. lane, 0)
    if head then
      local source = string.match(head, '^%["([%d]+%-[%d]+)"')
      if source and less(source, keep) then keep = source end
    end
  end
end
return {redis.call('XTRIM', KEYS[1], 'MINID', '~', keep), keep}
