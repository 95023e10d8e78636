-- credit.lua: money into the org pool (org.balance += a; org.allocated_total += a) + one ledger entry.
-- KEYS[1] ledger stream            kt:{org}:ledger
-- KEYS[2] wallet id set            kt:{org}:wallets
-- KEYS[3] idempotency hash         kt:{org}:idem:<key>
-- KEYS[4] org wallet hash          kt:{org}:w:org
-- KEYS[5] epoch marker hash        kt:{org}:epoch (created here when missing: money enters the
--         org only through credit, so the first credit arms a new store)
-- ARGV[1] use idempotency (1/0)    ARGV[2] fingerprint (sha256 hex of the canonical request)
-- ARGV[3] amount (micros, > 0)     ARGV[4] actor    ARGV[5] description
-- ARGV[6] events channel kt:{org}:events (gets 'funds:org')   ARGV[7] new epoch id (if missing)
-- Wake-up: PUBLISH 'funds:<wallet>' on the org's events channel in the same script as the
-- balance change, so every caller (wallet API, CLI, gateway) wakes the held requests waiting
-- for that wallet (store.tickets.EventHub). A channel is not a key (pub/sub has its own
-- namespace), so it comes in ARGV. Replays and refusals publish nothing.
-- Returns {'ok'|'replayed', entry_id, 'org', org_balance_after} or {'conflict'}.
local use_idem = ARGV[1] == '1'
local fingerprint = ARGV[2]
local amount = tonumber(ARGV[3])
local actor = ARGV[4]
local description = ARGV[5]
local channel = ARGV[6]
local IDEM_TTL_MS = 86400000

local function s(n) return string.format('%d', n) end

if not amount or amount <= 0 then return redis.error_reply('invalid amount') end
if use_idem then
  local prev = redis.call('HMGET', KEYS[3], 'fingerprint', 'result')
  if prev[1] then
    if prev[1] ~= fingerprint then return {'conflict'} end
    local r = cjson.decode(prev[2])
    table.insert(r, 1, 'replayed')
    return r
  end
end

local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if redis.call('EXISTS', KEYS[4]) == 0 then
  redis.call('HSET', KEYS[4], 'balance', 0, 'reserved', 0, 'allocated_total', 0,
    'spent_total', 0, 'created_ms', s(now_ms))
  redis.call('SADD', KEYS[2], 'org')
end
if redis.call('EXISTS', KEYS[5]) == 0 then
  redis.call('HSET', KEYS[5], 'id', ARGV[7], 'created_ms', s(now_ms), 'origin', 'credit')
end
local bal = redis.call('HINCRBY', KEYS[4], 'balance', s(amount))
redis.call('HINCRBY', KEYS[4], 'allocated_total', s(amount))
local id = redis.call('XADD', KEYS[1], '*', 'op', 'credit', 'wallet', 'org', 'amount', s(amount),
  'ts_ms', s(now_ms), 'actor', actor, 'description', description, 'balance_after', s(bal))
redis.call('PUBLISH', channel, 'funds:org')
local result = {id, 'org', s(bal)}
if use_idem then
  redis.call('HSET', KEYS[3], 'fingerprint', fingerprint, 'result', cjson.encode(result))
  redis.call('PEXPIRE', KEYS[3], IDEM_TTL_MS)
end
table.insert(result, 1, 'ok')
return result
