-- reclaim.lua: team/user wallet -> org pool (w.balance -= a; w.allocated_total -= a;
-- org.balance += a) + one ledger entry. Only available balance can be reclaimed.
-- KEYS[1] ledger stream            kt:{org}:ledger
-- KEYS[2] wallet id set            kt:{org}:wallets
-- KEYS[3] idempotency hash         kt:{org}:idem:<key>
-- KEYS[4] source wallet hash       kt:{org}:w:<source>
-- KEYS[5] org wallet hash          kt:{org}:w:org
-- ARGV[1] use idempotency (1/0)    ARGV[2] fingerprint
-- ARGV[3] amount (micros, > 0)     ARGV[4] actor    ARGV[5] description
-- ARGV[6] source wallet id         ARGV[7] events channel kt:{org}:events (gets 'funds:org')
-- Wake-up: PUBLISH 'funds:<wallet>' on the org's events channel in the same script as the
-- balance change, so every caller (wallet API, CLI, gateway) wakes the held requests waiting
-- for that wallet (store.tickets.EventHub). A channel is not a key (pub/sub has its own
-- namespace), so it comes in ARGV. Replays and refusals publish nothing.
-- Returns {'ok'|'replayed', entry_id, source, source_balance, 'org', org_balance},
--   {'conflict'}, {'unknown_wallet', source}, {'insufficient', source, available} or
--   {'bound', wallet, field} (the field would pass 2^53 - 1 micros; nothing written).
local use_idem = ARGV[1] == '1'
local fingerprint = ARGV[2]
local amount = tonumber(ARGV[3])
local actor = ARGV[4]
local description = ARGV[5]
local source = ARGV[6]
local channel = ARGV[7]

if not amount or amount <= 0 then return redis.error_reply('invalid amount') end
local replay = idem_replay(use_idem, KEYS[3], fingerprint)
if replay then return replay end
local raw = redis.call('HGET', KEYS[4], 'balance')
if not raw then return {'unknown_wallet', source} end
local available = tonumber(raw)
if available < amount then return {'insufficient', source, s(available)} end
-- Bounds of both sides before any write (prelude MAX_MICROS): refused, nothing changes.
local over = over_bound(KEYS[4], {'allocated_total'}, -amount)
if over then return {'bound', source, over} end
over = over_bound(KEYS[5], {'balance'}, amount)
if over then return {'bound', 'org', over} end

local now_ms = redis_now_ms()
if redis.call('EXISTS', KEYS[5]) == 0 then
  create_wallet(KEYS[5], KEYS[2], 'org', now_ms)
end
local bal = redis.call('HINCRBY', KEYS[4], 'balance', s(-amount))
redis.call('HINCRBY', KEYS[4], 'allocated_total', s(-amount))
local org_bal = redis.call('HINCRBY', KEYS[5], 'balance', s(amount))
local id = redis.call('XADD', KEYS[1], '*', 'op', 'reclaim', 'wallet', source,
  'amount', s(amount), 'ts_ms', s(now_ms), 'actor', actor, 'description', description,
  'from', source, 'to', 'org', 'balance_after', s(bal))
redis.call('PUBLISH', channel, 'funds:org')
local result = {id, source, s(bal), 'org', s(org_bal)}
idem_record(use_idem, KEYS[3], fingerprint, result)
table.insert(result, 1, 'ok')
return result
