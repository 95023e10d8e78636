-- topup_approve.lua: approve a pending top-up request AND fund it in one step: org pool -> the
-- team wallet (org.balance -= a; w.balance += a; w.allocated_total += a; w.funded_total += a) +
-- one ledger entry `allocate` carrying the top-up id, and the top-up marked approved. A top-up
-- that is not pending is refused ('conflict'), so approving twice (or two approvers at once)
-- allocates once; a pool short of the amount refuses and leaves it pending.
-- KEYS[1] ledger stream            kt:{org}:ledger
-- KEYS[2] wallet id set            kt:{org}:wallets
-- KEYS[3] org wallet hash          kt:{org}:w:org
-- KEYS[4] team wallet hash         kt:{org}:w:team:<team_id> (the top-up's `wallet`)
-- KEYS[5] top-up hash              kt:{org}:topup:<id>
-- ARGV[1] actor   ARGV[2] reason   ARGV[3] events channel kt:{org}:events (gets 'funds:<wallet>')
-- ARGV[4] team wallet id (must equal the top-up's `wallet`)
-- Returns {'ok', entry_id, org_balance, wallet_balance}, {'unknown'}, {'conflict', status} or
--   {'insufficient', 'org', available}.
local actor = ARGV[1]
local reason = ARGV[2]
local channel = ARGV[3]
local wallet = ARGV[4]

local t = redis.call('HMGET', KEYS[5], 'status', 'amount', 'wallet', 'id')
if not t[1] then return {'unknown'} end
if t[1] ~= 'pending' then return {'conflict', t[1]} end
if t[3] ~= wallet then return redis.error_reply('top-up wallet mismatch') end
local amount = tonumber(t[2])
if not amount or amount <= 0 then return redis.error_reply('invalid amount') end
local available = tonumber(redis.call('HGET', KEYS[3], 'balance') or '0')
if available < amount then return {'insufficient', 'org', s(available)} end

local now_ms = redis_now_ms()
if redis.call('EXISTS', KEYS[4]) == 0 then
  create_wallet(KEYS[4], KEYS[2], wallet, now_ms)
end
local org_bal = redis.call('HINCRBY', KEYS[3], 'balance', s(-amount))
local bal = redis.call('HINCRBY', KEYS[4], 'balance', s(amount))
redis.call('HINCRBY', KEYS[4], 'allocated_total', s(amount))
redis.call('HINCRBY', KEYS[4], 'funded_total', s(amount))
local id = redis.call('XADD', KEYS[1], '*', 'op', 'allocate', 'wallet', wallet,
  'amount', s(amount), 'ts_ms', s(now_ms), 'actor', actor,
  'description', 'top-up ' .. t[4] .. (reason ~= '' and (': ' .. reason) or ''),
  'from', 'org', 'to', wallet, 'topup', t[4], 'balance_after', s(bal))
redis.call('HSET', KEYS[5], 'status', 'approved', 'decided_by', actor,
  'decided_ms', s(now_ms), 'reason', reason, 'entry', id)
redis.call('PUBLISH', channel, 'funds:' .. wallet)
return {'ok', id, s(org_bal), s(bal)}
