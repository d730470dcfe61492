-- Move due timers into nf:incoming: each leaves the ZSET in the same step that publishes it
-- (DESIGN invariant 4), so several timer loops never publish one timer twice. Each published
-- resume carries `sig`, keyed with the engine's secret (adapters/signing.py checks it in the bridge),
-- so a producer of nf:incoming cannot forge one.
-- KEYS[1] timers zset   KEYS[2] incoming stream   KEYS[3] the engine's secret (string key)
-- ARGV[1] now ms   ARGV[2] most timers to move
-- A member is the JSON array [reason, token, org_id, channel_id, contact].
-- Returns {timers moved, due ms of the earliest left or false, lateness ms of each moved...}, or the
-- error NOSECRET when the secret key is missing (the caller creates it and calls again).
local secret = redis.call('GET', KEYS[3])
if not secret then
  return redis.error_reply('NOSECRET the engine secret is missing')
end
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'WITHSCORES', 'LIMIT', 0, ARGV[2])
local result = {0, false}
for i = 1, #due, 2 do
  local member, score = due[i], due[i + 1]
  local sig = redis.sha1hex(secret .. 'o' .. redis.sha1hex(secret .. 'i' .. member))
  local ok, timer = pcall(cjson.decode, member)
  if ok and type(timer) == 'table' then
    redis.call('XADD', KEYS[2], '*', 'source', 'engine', 'org_id', tostring(timer[3]),
      'channel_id', tostring(timer[4]), 'engine_resume', member, 'due_ms', score, 'sig', sig)
  else
    redis.call('XADD', KEYS[2], '*', 'source', 'engine', 'engine_resume', member, 'due_ms', score, 'sig', sig)
  end
  redis.call('ZREM', KEYS[1], member)
  result[1] = result[1] + 1
  table.insert(result, tonumber(ARGV[1]) - tonumber(score))
end
local nxt = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if nxt[2] then result[2] = nxt[2] end
return result
