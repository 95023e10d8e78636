-- release.lua: close an open reservation at no cost (w.reserved -= r; w.balance += r) + one
-- ledger entry. Idempotent by reservation id.
-- KEYS[1] ledger stream            kt:{org}:ledger
-- KEYS[2] reservation hash         kt:{org}:r:<reservation_id>
-- KEYS[3] deadline index zset      kt:{org}:r:deadlines
-- The funded wallet hash is ARGV[2] .. <wallet id stored in the reservation> (same {org} slot).
-- ARGV[1] reservation id   ARGV[2] wallet key prefix kt:{org}:w:   ARGV[3] reason   ARGV[4] actor
-- ARGV[5] events channel kt:{org}:events (gets 'funds:<wallet>' when reserved > 0)
-- ARGV[6] closed-record ttl ms (> 0): how long the closed hash / tombstone stays for idempotency
-- ARGV[7] '1' = the compensating release of an abandoned Check: a reservation a retried Check
--         adopted (reserve.lua `duplicate` sets `adopted`) funds that request now and is kept
--         (answered already_closed, nothing written); '' or absent = any release
-- Wake-up: PUBLISH 'funds:<wallet>' on the org's events channel in the same script as the
-- balance change, so every caller (wallet API, CLI, gateway) wakes the held requests waiting
-- for that wallet (store.tickets.EventHub). A channel is not a key (pub/sub has its own
-- namespace), so it comes in ARGV. Replays and refusals publish nothing.
-- Returns {outcome, wallet, reserved, cost}: outcome released | already_closed (also an adopted
-- one kept, ARGV[7]) | unknown (an unknown id is tombstoned for ARGV[6] ms so a reserve arriving after its release refuses it).
local rid = ARGV[1]
local wallet_prefix = ARGV[2]
local reason = ARGV[3]
local actor = ARGV[4]
local channel = ARGV[5]
local CLOSED_TTL_MS = tonumber(ARGV[6])
local abandoned = ARGV[7] == '1'

local r = redis.call('HMGET', KEYS[2], 'wallet', 'amount', 'state', 'cost', 'team', 'group',
  'user', 'model', 'adopted')
if not r[1] then
  -- Released before it was reserved: a Check gave up while its reserve was still in flight.
  -- The tombstone makes that late reserve refuse the id instead of holding funds for nobody.
  redis.call('HSET', KEYS[2], 'state', 'released', 'tombstone', '1')
  redis.call('PEXPIRE', KEYS[2], CLOSED_TTL_MS)
  return {'unknown', '', '0', '0'}
end
if r[3] ~= 'open' or (abandoned and r[9] == '1') then
  local closed_cost = r[4]
  if not closed_cost or closed_cost == '' then closed_cost = '0' end
  return {'already_closed', r[1], r[2], closed_cost}
end

local wallet = r[1]
local reserved = tonumber(r[2])
local wkey = wallet_prefix .. wallet
local now_ms = redis_now_ms()
redis.call('HINCRBY', wkey, 'reserved', s(-reserved))
local bal = redis.call('HINCRBY', wkey, 'balance', s(reserved))
redis.call('HSET', KEYS[2], 'state', 'released', 'cost', '0', 'closed_ms', s(now_ms))
redis.call('PEXPIRE', KEYS[2], CLOSED_TTL_MS)
redis.call('ZREM', KEYS[3], rid)
redis.call('XADD', KEYS[1], '*', 'op', 'release', 'wallet', wallet, 'amount', s(reserved),
  'ts_ms', s(now_ms), 'actor', actor, 'description', reason, 'reservation', rid,
  'reserved', s(reserved), 'cost', '0', 'team', r[5], 'group', r[6], 'user', r[7],
  'model', r[8], 'balance_after', s(bal))
if reserved > 0 then redis.call('PUBLISH', channel, 'funds:' .. wallet) end
return {'released', wallet, s(reserved), '0'}
