-- expire.lua: the sweeper. Settles up to `limit` overdue open reservations (deadline <= now) at
-- their reserved estimate, marked estimated=1, one ledger entry each. Atomic, so with several
-- sweepers each reservation is closed exactly once (a settled one is no longer in the index).
-- KEYS[1] ledger stream            kt:{org}:ledger
-- KEYS[2] deadline index zset      kt:{org}:r:deadlines
-- Reservation hashes are ARGV[1] .. <id> and wallet hashes ARGV[2] .. <wallet id>: read from the
-- index, so not declarable up front; all share the {org} hash tag (one cluster slot).
-- ARGV[1] reservation key prefix kt:{org}:r:   ARGV[2] wallet key prefix kt:{org}:w:
-- ARGV[3] limit (> 0)   ARGV[4] actor
-- No funds wake-up (unlike settle/release): an expiry charges the whole reserved estimate, so
-- the wallet's balance does not go up and there is nothing for a held request to wait for.
-- Returns {reservation_id_1, wallet_1, amount_1, ...} for the reservations it expired.
local res_prefix = ARGV[1]
local wallet_prefix = ARGV[2]
local limit = tonumber(ARGV[3])
local actor = ARGV[4]
local CLOSED_TTL_MS = 604800000

local function s(x) return string.format('%d', x) end

if not limit or limit <= 0 then return redis.error_reply('invalid limit') end
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now_ms, 'LIMIT', 0, limit)
local out = {}
for _, rid in ipairs(due) do
  local rkey = res_prefix .. rid
  local r = redis.call('HMGET', rkey, 'wallet', 'amount', 'state', 'team', 'group', 'user', 'model')
  redis.call('ZREM', KEYS[2], rid)
  if r[1] and r[3] == 'open' then
    local wallet = r[1]
    local reserved = tonumber(r[2])
    local wkey = wallet_prefix .. wallet
    redis.call('HINCRBY', wkey, 'reserved', s(-reserved))
    local bal = redis.call('HGET', wkey, 'balance')
    redis.call('HINCRBY', wkey, 'spent_total', s(reserved))
    redis.call('HSET', rkey, 'state', 'expired', 'cost', s(reserved), 'estimated', '1',
      'closed_ms', s(now_ms))
    redis.call('PEXPIRE', rkey, CLOSED_TTL_MS)
    redis.call('XADD', KEYS[1], '*', 'op', 'expire', 'wallet', wallet, 'amount', s(reserved),
      'ts_ms', s(now_ms), 'actor', actor, 'description', 'reservation deadline passed',
      'reservation', rid, 'reserved', s(reserved), 'cost', s(reserved), 'estimated', '1',
      'team', r[4], 'group', r[5], 'user', r[6], 'model', r[7], 'balance_after', bal)
    out[#out + 1] = rid
    out[#out + 1] = wallet
    out[#out + 1] = s(reserved)
  end
end
return out
