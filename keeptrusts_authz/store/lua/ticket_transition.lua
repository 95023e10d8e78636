-- ticket_transition.lua: compare-and-set a cost ticket's status (wallets.holds, the wallet API).
-- KEYS[1] ticket hash              kt:{org}:t:<ticket_id>
-- ARGV[1] allowed current statuses, comma separated (e.g. 'pending')
-- ARGV[2] new status   ARGV[3] event channel ('' = do not publish)   ARGV[4] event message
-- ARGV[5 ..] field, value pairs to set with the new status
-- Returns {'ok'} | {'unknown'} | {'conflict', current_status}.
local current = redis.call('HGET', KEYS[1], 'status')
if not current then return {'unknown'} end
local allowed = false
for s in string.gmatch(ARGV[1], '[^,]+') do
  if s == current then allowed = true end
end
if not allowed then return {'conflict', current} end
redis.call('HSET', KEYS[1], 'status', ARGV[2])
for i = 5, #ARGV - 1, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
end
if ARGV[3] ~= '' then redis.call('PUBLISH', ARGV[3], ARGV[4]) end
return {'ok'}
