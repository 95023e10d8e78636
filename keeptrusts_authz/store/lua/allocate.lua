-- allocate.lua: org pool -> team/user wallet (org.balance -= a; w.balance += a;
-- w.allocated_total += a; w.funded_total += a) + one ledger entry. Creates the target wallet when allowed.
-- KEYS[1] ledger stream            kt:{org}:ledger
-- KEYS[2] wallet id set            kt:{org}:wallets
-- KEYS[3] idempotency hash         kt:{org}:idem:<key>
-- KEYS[4] org wallet hash          kt:{org}:w:org
-- KEYS[5] target wallet hash       kt:{org}:w:<target>
-- ARGV[1] use idempotency (1/0)    ARGV[2] fingerprint
-- ARGV[3] amount (micros, > 0)     ARGV[4] actor    ARGV[5] description
-- ARGV[6] target wallet id         ARGV[7] create the target if missing (1/0)
-- ARGV[8] events channel kt:{org}:events (gets 'funds:<target>')
-- ARGV[9] team of a user target ('' = none given): a user wallet belongs to one team, its
--   `team` field, written when it is first funded for a team; a user wallet of another team is
--   refused ('wrong_team'), a user wallet without one adopts it. The entry then carries
--   `user_team`.
-- Wake-up: PUBLISH 'funds:<wallet>' on the org's events channel in the same script as the
-- balance change, so every caller (wallet API, CLI, gateway) wakes the held requests waiting
-- for that wallet (store.tickets.EventHub). A channel is not a key (pub/sub has its own
-- namespace), so it comes in ARGV. Replays and refusals publish nothing.
-- Returns {'ok'|'replayed', entry_id, 'org', org_balance, target, target_balance},
--   {'conflict'}, {'unknown_wallet', target}, {'insufficient', 'org', available} or
--   {'wrong_team', target, its team} or
--   {'bound', target, field} (the field would pass 2^53 - 1 micros; nothing written).
local use_idem = ARGV[1] == '1'
local fingerprint = ARGV[2]
local amount = tonumber(ARGV[3])
local actor = ARGV[4]
local description = ARGV[5]
local target = ARGV[6]
local may_create = ARGV[7] == '1'
local channel = ARGV[8]
local team = ARGV[9] or ''
local user_target = string.sub(target, 1, 5) == 'user:'

if not amount or amount <= 0 then return redis.error_reply('invalid amount') end
local replay = idem_replay(use_idem, KEYS[3], fingerprint)
if replay then return replay end
local exists = redis.call('EXISTS', KEYS[5]) == 1
if not exists and not may_create then return {'unknown_wallet', target} end
if exists and user_target and team ~= '' then
  local stored = redis.call('HGET', KEYS[5], 'team')
  if stored and stored ~= team then return {'wrong_team', target, stored} end
end
local available = tonumber(redis.call('HGET', KEYS[4], 'balance') or '0')
if available < amount then return {'insufficient', 'org', s(available)} end
-- Bounds before any write (prelude MAX_MICROS): refused, nothing changes.
local over = over_bound(KEYS[5], {'balance', 'allocated_total', 'funded_total'}, amount)
if over then return {'bound', target, over} end

local now_ms = redis_now_ms()
if not exists then
  create_wallet(KEYS[5], KEYS[2], target, now_ms)
end
if user_target and team ~= '' then redis.call('HSET', KEYS[5], 'team', team) end
local org_bal = redis.call('HINCRBY', KEYS[4], 'balance', s(-amount))
local bal = redis.call('HINCRBY', KEYS[5], 'balance', s(amount))
redis.call('HINCRBY', KEYS[5], 'allocated_total', s(amount))
redis.call('HINCRBY', KEYS[5], 'funded_total', s(amount))
local entry = {'op', 'allocate', 'wallet', target,
  'amount', s(amount), 'ts_ms', s(now_ms), 'actor', actor, 'description', description,
  'from', 'org', 'to', target, 'balance_after', s(bal)}
-- The user's team goes into the ledger too: a replay (restore) rebuilds the membership.
if user_target and team ~= '' then
  entry[#entry + 1] = 'user_team'
  entry[#entry + 1] = team
end
local id = redis.call('XADD', KEYS[1], '*', unpack(entry))
redis.call('PUBLISH', channel, 'funds:' .. target)
local result = {id, 'org', s(org_bal), target, s(bal)}
idem_record(use_idem, KEYS[3], fingerprint, result)
table.insert(result, 1, 'ok')
return result
