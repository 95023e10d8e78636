-- credit.lua: money into the org pool (org.balance += a; org.allocated_total += a;
-- org.funded_total += a) + one ledger entry.
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
-- Returns {'ok'|'replayed', entry_id, 'org', org_balance_after}, {'conflict'} or
--   {'bound', 'org', field} (the field would pass 2^53 - 1 micros; nothing written).
local use_idem = ARGV[1] == '1'
local fingerprint = ARGV[2]
local amount = tonumber(ARGV[3])
local actor = ARGV[4]
local description = ARGV[5]
local channel = ARGV[6]

if not amount or amount <= 0 then return redis.error_reply('invalid amount') end
local replay = idem_replay(use_idem, KEYS[3], fingerprint)
if replay then return replay end
-- Bounds before any write (prelude MAX_MICROS): refused, nothing changes.
local over = over_bound(KEYS[4], {'balance', 'allocated_total', 'funded_total'}, amount)
if over then return {'bound', 'org', over} end

local now_ms = redis_now_ms()
if redis.call('EXISTS', KEYS[4]) == 0 then
  create_wallet(KEYS[4], KEYS[2], 'org', now_ms)
end
if redis.call('EXISTS', KEYS[5]) == 0 then
  redis.call('HSET', KEYS[5], 'id', ARGV[7], 'created_ms', s(now_ms), 'origin', 'credit')
end
local bal = redis.call('HINCRBY', KEYS[4], 'balance', s(amount))
redis.call('HINCRBY', KEYS[4], 'allocated_total', s(amount))
redis.call('HINCRBY', KEYS[4], 'funded_total', s(amount))
local id = redis.call('XADD', KEYS[1], '*', 'op', 'credit', 'wallet', 'org', 'amount', s(amount),
  'ts_ms', s(now_ms), 'actor', actor, 'description', description, 'balance_after', s(bal))
redis.call('PUBLISH', channel, 'funds:org')
local result = {id, 'org', s(bal)}
idem_record(use_idem, KEYS[3], fingerprint, result)
table.insert(result, 1, 'ok')
return result
