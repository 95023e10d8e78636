-- settle.lua: close an open reservation at its real cost (w.reserved -= r; w.balance += r - c;
-- w.spent_total += c) + one ledger entry. Idempotent by reservation id.
-- KEYS[1] ledger stream            kt:{org}:ledger
-- KEYS[2] reservation hash         kt:{org}:r:<reservation_id>
-- KEYS[3] deadline index zset      kt:{org}:r:deadlines
-- The funded wallet hash is ARGV[2] .. <wallet id stored in the reservation>: same {org} hash tag,
-- hence the same cluster slot (the caller cannot know the wallet before reading the reservation).
-- ARGV[1] reservation id   ARGV[2] wallet key prefix kt:{org}:w:   ARGV[3] cost (micros, >= 0)
-- ARGV[4] estimated (0/1)  ARGV[5] input tokens  ARGV[6] output tokens  ARGV[7] cached tokens
-- ARGV[8] model ('' = the reserved model)   ARGV[9] actor
-- ARGV[10] events channel kt:{org}:events (gets 'funds:<wallet>' when cost < reserved, i.e. the
--   settle returned money to the wallet)
-- Wake-up: PUBLISH 'funds:<wallet>' on the org's events channel in the same script as the
-- balance change, so every caller (wallet API, CLI, gateway) wakes the held requests waiting
-- for that wallet (store.tickets.EventHub). A channel is not a key (pub/sub has its own
-- namespace), so it comes in ARGV. Replays and refusals publish nothing.
-- Returns {outcome, wallet, reserved, cost}: outcome settled | already_closed | unknown.
local rid = ARGV[1]
local wallet_prefix = ARGV[2]
local cost = tonumber(ARGV[3])
local estimated = ARGV[4]
local input_tokens = ARGV[5]
local output_tokens = ARGV[6]
local cached_tokens = ARGV[7]
local model = ARGV[8]
local actor = ARGV[9]
local channel = ARGV[10]
local CLOSED_TTL_MS = 604800000

local function s(x) return string.format('%d', x) end

if not cost or cost < 0 then return redis.error_reply('invalid cost') end
local r = redis.call('HMGET', KEYS[2], 'wallet', 'amount', 'state', 'cost', 'team', 'group',
  'user', 'model')
if not r[1] then return {'unknown', '', '0', '0'} end
if r[3] ~= 'open' then
  local closed_cost = r[4]
  if not closed_cost or closed_cost == '' then closed_cost = '0' end
  return {'already_closed', r[1], r[2], closed_cost}
end

local wallet = r[1]
local reserved = tonumber(r[2])
if model == '' then model = r[8] end
local wkey = wallet_prefix .. wallet
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HINCRBY', wkey, 'reserved', s(-reserved))
local bal = redis.call('HINCRBY', wkey, 'balance', s(reserved - cost))
redis.call('HINCRBY', wkey, 'spent_total', s(cost))
redis.call('HSET', KEYS[2], 'state', 'settled', 'cost', s(cost), 'estimated', estimated,
  'closed_ms', s(now_ms))
redis.call('PEXPIRE', KEYS[2], CLOSED_TTL_MS)
redis.call('ZREM', KEYS[3], rid)
redis.call('XADD', KEYS[1], '*', 'op', 'settle', 'wallet', wallet, 'amount', s(cost),
  'ts_ms', s(now_ms), 'actor', actor, 'description', '', 'reservation', rid,
  'reserved', s(reserved), 'cost', s(cost), 'estimated', estimated, 'team', r[5],
  'group', r[6], 'user', r[7], 'model', model, 'input_tokens', input_tokens,
  'output_tokens', output_tokens, 'cached_tokens', cached_tokens, 'balance_after', s(bal))
if reserved > cost then redis.call('PUBLISH', channel, 'funds:' .. wallet) end
return {'settled', wallet, s(reserved), s(cost)}
