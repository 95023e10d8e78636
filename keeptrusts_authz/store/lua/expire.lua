-- expire.lua: the sweeper. Settles up to `limit` overdue open reservations (deadline <= now) at
-- their reserved estimate, marked estimated=1, one ledger entry each (+ its usage counters and
-- daily burn). Atomic, so with several sweepers each reservation is closed exactly once (a
-- settled one is no longer in the index).
-- KEYS[1] ledger stream            kt:{org}:ledger
-- KEYS[2] deadline index zset      kt:{org}:r:deadlines
-- KEYS[3] usage counters hash      kt:{org}:usage
-- Reservation hashes are ARGV[1] .. <id> and wallet hashes ARGV[2] .. <wallet id>: read from the
-- index, so not declarable up front; all share the {org} hash tag (one cluster slot). The burn
-- hash is ARGV[5] .. <UTC day of TIME, yyyy-mm-dd>: built here so that it is the day of the
-- ledger entries' ts_ms (Redis's clock); same {org} hash tag, same slot.
-- ARGV[1] reservation key prefix kt:{org}:r:   ARGV[2] wallet key prefix kt:{org}:w:
-- ARGV[3] limit (> 0)   ARGV[4] actor   ARGV[5] burn key prefix kt:{org}:burn:
-- ARGV[6] closed-record ttl ms (> 0): how long the closed reservation hash stays for idempotency
-- Usage counters as in settle.lua, with the reservation's model as the label (the admission
-- stores the priced model name there), estimated 1 and no tokens:
--   KEYS[3] 'spend|<team>|<group>|1|<model>' += reserved, 'requests|<team>|<group>|<model>' += 1
--   burn hash <wallet> += reserved (when > 0), PEXPIRE ~8 days
-- No funds wake-up (unlike settle/release): an expiry charges the whole reserved estimate, so
-- the wallet's balance does not go up and there is nothing for a held request to wait for.
-- Returns {reservation_id_1, wallet_1, amount_1, ...} for the reservations it expired.
local res_prefix = ARGV[1]
local wallet_prefix = ARGV[2]
local limit = tonumber(ARGV[3])
local actor = ARGV[4]
local burn_prefix = ARGV[5]
local usage_key = KEYS[3]
local CLOSED_TTL_MS = tonumber(ARGV[6])
local BURN_TTL_MS = 694800000 -- 8 days + 1 h: the scrape reads today and the 7 days before


if not limit or limit <= 0 then return redis.error_reply('invalid limit') end
local now_ms = redis_now_ms()
local burn_key = burn_prefix .. utc_day(now_ms)
local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now_ms, 'LIMIT', 0, limit)
local out = {}
for _, rid in ipairs(due) do
  local rkey = res_prefix .. rid
  local r = redis.call('HMGET', rkey, 'wallet', 'amount', 'state', 'team', 'group', 'user', 'model',
    'created_ms')
  redis.call('ZREM', KEYS[2], rid)
  if r[1] and r[3] == 'open' then
    local wallet = r[1]
    local reserved = tonumber(r[2])
    local team = r[4] or ''
    local group = r[5] or ''
    local model = r[7] or ''
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
      'team', team, 'group', group, 'user', r[6], 'model', model, 'balance_after', bal,
      'reserved_ms', r[8] or '')
    local who = team .. '|' .. group .. '|'
    redis.call('HINCRBY', usage_key, 'spend|' .. who .. '1|' .. model, s(reserved))
    redis.call('HINCRBY', usage_key, 'requests|' .. who .. model, 1)
    if reserved > 0 then
      redis.call('HINCRBY', burn_key, wallet, s(reserved))
      redis.call('PEXPIRE', burn_key, BURN_TTL_MS)
    end
    out[#out + 1] = rid
    out[#out + 1] = wallet
    out[#out + 1] = s(reserved)
  end
end
return out
