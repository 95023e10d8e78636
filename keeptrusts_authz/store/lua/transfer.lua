-- transfer.lua: wallet -> wallet reallocation (s.balance -= a; s.allocated_total -= a;
-- d.balance += a; d.allocated_total += a) + one ledger entry.
-- KEYS[1] ledger stream            kt:{org}:ledger
-- KEYS[2] wallet id set            kt:{org}:wallets
-- KEYS[3] idempotency hash         kt:{org}:idem:<key>
-- KEYS[4] source wallet hash       kt:{org}:w:<source>
-- KEYS[5] destination wallet hash  kt:{org}:w:<destination>
-- ARGV[1] use idempotency (1/0)    ARGV[2] fingerprint
-- ARGV[3] amount (micros, > 0)     ARGV[4] actor    ARGV[5] description
-- ARGV[6] source wallet id         ARGV[7] destination wallet id
-- ARGV[8] create the destination if missing (1/0)
-- ARGV[9] events channel kt:{org}:events (gets 'funds:<destination>')
-- Wake-up: PUBLISH 'funds:<wallet>' on the org's events channel in the same script as the
-- balance change, so every caller (wallet API, CLI, gateway) wakes the held requests waiting
-- for that wallet (store.tickets.EventHub). A channel is not a key (pub/sub has its own
-- namespace), so it comes in ARGV. Replays and refusals publish nothing.
-- Returns {'ok'|'replayed', entry_id, source, source_balance, destination, destination_balance},
--   {'conflict'}, {'unknown_wallet', id} or {'insufficient', source, available}.
local use_idem = ARGV[1] == '1'
local fingerprint = ARGV[2]
local amount = tonumber(ARGV[3])
local actor = ARGV[4]
local description = ARGV[5]
local source = ARGV[6]
local dest = ARGV[7]
local may_create = ARGV[8] == '1'
local channel = ARGV[9]
local IDEM_TTL_MS = 86400000

local function s(n) return string.format('%d', n) end

if not amount or amount <= 0 then return redis.error_reply('invalid amount') end
if source == dest then return redis.error_reply('transfer to the same wallet') end
if use_idem then
  local prev = redis.call('HMGET', KEYS[3], 'fingerprint', 'result')
  if prev[1] then
    if prev[1] ~= fingerprint then return {'conflict'} end
    local r = cjson.decode(prev[2])
    table.insert(r, 1, 'replayed')
    return r
  end
end
local raw = redis.call('HGET', KEYS[4], 'balance')
if not raw then return {'unknown_wallet', source} end
local dest_exists = redis.call('EXISTS', KEYS[5]) == 1
if not dest_exists and not may_create then return {'unknown_wallet', dest} end
local available = tonumber(raw)
if available < amount then return {'insufficient', source, s(available)} end

local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if not dest_exists then
  redis.call('HSET', KEYS[5], 'balance', 0, 'reserved', 0, 'allocated_total', 0,
    'spent_total', 0, 'created_ms', s(now_ms))
  redis.call('SADD', KEYS[2], dest)
end
local bal = redis.call('HINCRBY', KEYS[4], 'balance', s(-amount))
redis.call('HINCRBY', KEYS[4], 'allocated_total', s(-amount))
local dest_bal = redis.call('HINCRBY', KEYS[5], 'balance', s(amount))
redis.call('HINCRBY', KEYS[5], 'allocated_total', s(amount))
local id = redis.call('XADD', KEYS[1], '*', 'op', 'transfer', 'wallet', source,
  'amount', s(amount), 'ts_ms', s(now_ms), 'actor', actor, 'description', description,
  'from', source, 'to', dest, 'balance_after', s(bal))
redis.call('PUBLISH', channel, 'funds:' .. dest)
local result = {id, source, s(bal), dest, s(dest_bal)}
if use_idem then
  redis.call('HSET', KEYS[3], 'fingerprint', fingerprint, 'result', cjson.encode(result))
  redis.call('PEXPIRE', KEYS[3], IDEM_TTL_MS)
end
table.insert(result, 1, 'ok')
return result
