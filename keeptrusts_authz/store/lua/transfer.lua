-- transfer.lua: wallet -> wallet reallocation (s.balance -= a; s.allocated_total -= a;
-- d.balance += a; d.allocated_total += a; d.funded_total += a) + one ledger entry.
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
--   {'conflict'}, {'unknown_wallet', id}, {'insufficient', source, available} or
--   {'bound', wallet, field} (the field would pass 2^53 - 1 micros; nothing written).
local use_idem = ARGV[1] == '1'
local fingerprint = ARGV[2]
local amount = tonumber(ARGV[3])
local actor = ARGV[4]
local description = ARGV[5]
local source = ARGV[6]
local dest = ARGV[7]
local may_create = ARGV[8] == '1'
local channel = ARGV[9]

if not amount or amount <= 0 then return redis.error_reply('invalid amount') end
if source == dest then return redis.error_reply('transfer to the same wallet') end
local replay = idem_replay(use_idem, KEYS[3], fingerprint)
if replay then return replay end
local raw = redis.call('HGET', KEYS[4], 'balance')
if not raw then return {'unknown_wallet', source} end
local dest_exists = redis.call('EXISTS', KEYS[5]) == 1
if not dest_exists and not may_create then return {'unknown_wallet', dest} end
local available = tonumber(raw)
if available < amount then return {'insufficient', source, s(available)} end
-- Bounds of both sides before any write (prelude MAX_MICROS): the source is never debited
-- for a destination that cannot take the amount.
local over = over_bound(KEYS[4], {'allocated_total'}, -amount)
if over then return {'bound', source, over} end
over = over_bound(KEYS[5], {'balance', 'allocated_total', 'funded_total'}, amount)
if over then return {'bound', dest, over} end

local now_ms = redis_now_ms()
if not dest_exists then
  create_wallet(KEYS[5], KEYS[2], dest, now_ms)
end
local bal = redis.call('HINCRBY', KEYS[4], 'balance', s(-amount))
redis.call('HINCRBY', KEYS[4], 'allocated_total', s(-amount))
local dest_bal = redis.call('HINCRBY', KEYS[5], 'balance', s(amount))
redis.call('HINCRBY', KEYS[5], 'allocated_total', s(amount))
redis.call('HINCRBY', KEYS[5], 'funded_total', s(amount))
local id = redis.call('XADD', KEYS[1], '*', 'op', 'transfer', 'wallet', source,
  'amount', s(amount), 'ts_ms', s(now_ms), 'actor', actor, 'description', description,
  'from', source, 'to', dest, 'balance_after', s(bal))
redis.call('PUBLISH', channel, 'funds:' .. dest)
local result = {id, source, s(bal), dest, s(dest_bal)}
idem_record(use_idem, KEYS[3], fingerprint, result)
table.insert(result, 1, 'ok')
return result
