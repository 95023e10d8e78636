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
-- ARGV[10] team the source must belong to when it is a USER wallet ('' = no constraint)
-- ARGV[11] team of the destination when it is a USER wallet ('' = none given): one of another
--   team is refused, one without a team (or created here) adopts it. A team lead's move names
--   its own team in both, so it never reaches another team's user. The entry then carries
--   `user_team` (the destination's).
-- Wake-up: PUBLISH 'funds:<wallet>' on the org's events channel in the same script as the
-- balance change, so every caller (wallet API, CLI, gateway) wakes the held requests waiting
-- for that wallet (store.tickets.EventHub). A channel is not a key (pub/sub has its own
-- namespace), so it comes in ARGV. Replays and refusals publish nothing.
-- Returns {'ok'|'replayed', entry_id, source, source_balance, destination, destination_balance},
--   {'conflict'}, {'unknown_wallet', id}, {'insufficient', source, available} or
--   {'wrong_team', id, its team or ''} or
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
local source_team = ARGV[10] or ''
local dest_team = ARGV[11] or ''
local function is_user(id) return string.sub(id, 1, 5) == 'user:' end

if not amount or amount <= 0 then return redis.error_reply('invalid amount') end
if source == dest then return redis.error_reply('transfer to the same wallet') end
local replay = idem_replay(use_idem, KEYS[3], fingerprint)
if replay then return replay end
local raw = redis.call('HGET', KEYS[4], 'balance')
if not raw then return {'unknown_wallet', source} end
local dest_exists = redis.call('EXISTS', KEYS[5]) == 1
if not dest_exists and not may_create then return {'unknown_wallet', dest} end
if source_team ~= '' and is_user(source) then
  local stored = redis.call('HGET', KEYS[4], 'team')
  if stored ~= source_team then return {'wrong_team', source, stored or ''} end
end
if dest_team ~= '' and is_user(dest) and dest_exists then
  local stored = redis.call('HGET', KEYS[5], 'team')
  if stored and stored ~= dest_team then return {'wrong_team', dest, stored} end
end
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
if dest_team ~= '' and is_user(dest) then redis.call('HSET', KEYS[5], 'team', dest_team) end
local bal = redis.call('HINCRBY', KEYS[4], 'balance', s(-amount))
redis.call('HINCRBY', KEYS[4], 'allocated_total', s(-amount))
local dest_bal = redis.call('HINCRBY', KEYS[5], 'balance', s(amount))
redis.call('HINCRBY', KEYS[5], 'allocated_total', s(amount))
redis.call('HINCRBY', KEYS[5], 'funded_total', s(amount))
local entry = {'op', 'transfer', 'wallet', source,
  'amount', s(amount), 'ts_ms', s(now_ms), 'actor', actor, 'description', description,
  'from', source, 'to', dest, 'balance_after', s(bal)}
-- The destination user's team goes into the ledger too: a replay rebuilds the membership.
if dest_team ~= '' and is_user(dest) then
  entry[#entry + 1] = 'user_team'
  entry[#entry + 1] = dest_team
end
local id = redis.call('XADD', KEYS[1], '*', unpack(entry))
redis.call('PUBLISH', channel, 'funds:' .. dest)
local result = {id, source, s(bal), dest, s(dest_bal)}
idem_record(use_idem, KEYS[3], fingerprint, result)
table.insert(result, 1, 'ok')
return result
