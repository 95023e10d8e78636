-- settle.lua: close an open reservation at its real cost (w.reserved -= r; w.balance += r - c;
-- w.spent_total += c) + one ledger entry + the usage counters and daily burn of that entry.
-- Idempotent by reservation id.
-- KEYS[1] ledger stream            kt:{org}:ledger
-- KEYS[2] reservation hash         kt:{org}:r:<reservation_id>
-- KEYS[3] deadline index zset      kt:{org}:r:deadlines
-- KEYS[4] usage counters hash      kt:{org}:usage
-- The funded wallet hash is ARGV[2] .. <wallet id stored in the reservation>: same {org} hash tag,
-- hence the same cluster slot (the caller cannot know the wallet before reading the reservation).
-- The burn hash is ARGV[11] .. <UTC day of TIME, yyyy-mm-dd>: built here so that it is the day of
-- the ledger entry's ts_ms (Redis's clock, not the caller's); same {org} hash tag, same slot.
-- ARGV[1] reservation id   ARGV[2] wallet key prefix kt:{org}:w:   ARGV[3] cost (micros, >= 0)
-- ARGV[4] estimated (0/1)  ARGV[5] input tokens  ARGV[6] output tokens  ARGV[7] cached tokens
-- ARGV[8] model ('' = the reserved model)   ARGV[9] actor
-- ARGV[10] model label for the usage counters: the priced model name from the price table, or
--   'other' ('' = the reserved model, which the admission stores as the priced name)
-- ARGV[11] burn key prefix kt:{org}:burn:
-- ARGV[12] events channel kt:{org}:events (gets 'funds:<wallet>' when cost < reserved, i.e. the
--   settle returned money to the wallet)
-- ARGV[13] closed-record ttl ms (> 0): how long the closed reservation hash stays for idempotency
-- ARGV[14] recover: the paying wallet id of a journaled charge ('' = an ordinary settle)
-- ARGV[15] its team   ARGV[16] its group   ARGV[17] its user   ARGV[18] its admission time (ms)
-- Recovery (the settlement journal, wallets/restore.py and gateway/settler.py): with ARGV[14]
-- set and NO record of the reservation (its reserve died with a lost store), the settle is
-- booked as if reserved for 0: a closed record (state settled, amount 0, recovered 1) with the
-- closed-record ttl, w.balance -= c, w.spent_total += c, one 'settle' ledger entry with
-- reserved 0 and recovered 1, the usage counters and burn as below. Outcome 'recovered'. A
-- record that exists without a wallet (a release tombstone) answers 'unknown'; so does a wallet
-- that does not exist (nothing is charged to a wallet the books do not have).
-- Usage counters, written in the same script as the ledger entry so they can never disagree with
-- it (team and group are the reservation's; <est> 0/1; <kind> input/output/cached):
--   KEYS[4] 'spend|<team>|<group>|<est>|<label>' += cost (micros)
--           'requests|<team>|<group>|<label>' += 1
--           'tokens|<team>|<group>|<kind>|<label>' += tokens (only when > 0)
--   burn hash <wallet> += cost (when > 0), PEXPIRE ~8 days
-- Wake-up: PUBLISH 'funds:<wallet>' on the org's events channel in the same script as the
-- balance change, so every caller (wallet API, CLI, gateway) wakes the held requests waiting
-- for that wallet (store.tickets.EventHub). A channel is not a key (pub/sub has its own
-- namespace), so it comes in ARGV. Replays and refusals publish nothing and count nothing.
-- Late real usage: a real settle (ARGV[4] = 0) of a reservation closed at an estimate (an
-- estimated settle, or expired by the sweeper) replaces the estimate: the wallet moves by
-- delta = cost - previous cost (balance -= delta, spent_total += delta), the reservation keeps
-- the real cost (estimated 0, so a repeat is already_closed), one 'correct' ledger entry
-- (previous_cost, cost, delta, tokens), the usage counters move the spend from estimated to
-- real and add the tokens, the day's burn moves by delta.
-- Both ledger entries carry `label` (the usage counters' model label), so a restore from the
-- ledger rebuilds the counters exactly.
-- Returns {outcome, wallet, reserved, cost}: outcome settled | corrected | already_closed |
-- unknown | recovered.
local rid = ARGV[1]
local wallet_prefix = ARGV[2]
local cost = tonumber(ARGV[3])
local estimated = ARGV[4]
local input_tokens = ARGV[5]
local output_tokens = ARGV[6]
local cached_tokens = ARGV[7]
local model = ARGV[8]
local actor = ARGV[9]
local label = ARGV[10]
local burn_prefix = ARGV[11]
local channel = ARGV[12]
local usage_key = KEYS[4]
local CLOSED_TTL_MS = tonumber(ARGV[13])
local recover_wallet = ARGV[14] or ''
local BURN_TTL_MS = 694800000 -- 8 days + 1 h: the scrape reads today and the 7 days before


if not cost or cost < 0 then return redis.error_reply('invalid cost') end
local r = redis.call('HMGET', KEYS[2], 'wallet', 'amount', 'state', 'cost', 'team', 'group',
  'user', 'model', 'estimated', 'created_ms')
local recovered = false
if not r[1] then
  if recover_wallet == '' or redis.call('EXISTS', KEYS[2]) == 1
      or redis.call('EXISTS', wallet_prefix .. recover_wallet) == 0 then
    return {'unknown', '', '0', '0'}
  end
  recovered = true
  r = {recover_wallet, '0', 'open', '', ARGV[15], ARGV[16], ARGV[17], model, '0', ARGV[18]}
end
local closed_cost = r[4]
if not closed_cost or closed_cost == '' then closed_cost = '0' end
local correcting = r[3] ~= 'open' and r[3] ~= 'released' and r[9] == '1' and estimated == '0'
if r[3] ~= 'open' and not correcting then
  return {'already_closed', r[1], r[2], closed_cost}
end

local wallet = r[1]
local reserved = tonumber(r[2])
local team = r[5] or ''
local group = r[6] or ''
if model == '' then model = r[8] end
if label == '' then label = r[8] or '' end
local wkey = wallet_prefix .. wallet
local now_ms = redis_now_ms()
local who = team .. '|' .. group .. '|'

local function count_tokens()
  for _, kind in ipairs({{'input', input_tokens}, {'output', output_tokens},
      {'cached', cached_tokens}}) do
    local n = tonumber(kind[2])
    if n and n > 0 then
      redis.call('HINCRBY', usage_key, 'tokens|' .. who .. kind[1] .. '|' .. label, s(n))
    end
  end
end

local function burn(amount)
  if amount ~= 0 then
    local burn_key = burn_prefix .. utc_day(now_ms)
    redis.call('HINCRBY', burn_key, wallet, s(amount))
    redis.call('PEXPIRE', burn_key, BURN_TTL_MS)
  end
end

if correcting then
  local previous = tonumber(closed_cost)
  local delta = cost - previous
  local bal = redis.call('HINCRBY', wkey, 'balance', s(-delta))
  redis.call('HINCRBY', wkey, 'spent_total', s(delta))
  redis.call('HSET', KEYS[2], 'cost', s(cost), 'estimated', '0', 'corrected_ms', s(now_ms))
  redis.call('XADD', KEYS[1], '*', 'op', 'correct', 'wallet', wallet, 'amount', s(delta),
    'ts_ms', s(now_ms), 'actor', actor, 'description', 'real usage replaces the estimate',
    'reservation', rid, 'reserved', s(reserved), 'previous_cost', s(previous), 'cost', s(cost),
    'delta', s(delta), 'estimated', '0', 'team', team, 'group', group, 'user', r[7],
    'model', model, 'input_tokens', input_tokens, 'output_tokens', output_tokens,
    'cached_tokens', cached_tokens, 'balance_after', s(bal), 'label', label)
  redis.call('HINCRBY', usage_key, 'spend|' .. who .. '1|' .. label, s(-previous))
  redis.call('HINCRBY', usage_key, 'spend|' .. who .. '0|' .. label, s(cost))
  count_tokens()
  burn(delta)
  if delta < 0 then redis.call('PUBLISH', channel, 'funds:' .. wallet) end
  return {'corrected', wallet, s(reserved), s(cost)}
end

if reserved ~= 0 then redis.call('HINCRBY', wkey, 'reserved', s(-reserved)) end
local bal = redis.call('HINCRBY', wkey, 'balance', s(reserved - cost))
redis.call('HINCRBY', wkey, 'spent_total', s(cost))
if recovered then
  redis.call('HSET', KEYS[2], 'wallet', wallet, 'amount', '0', 'team', team, 'group', group,
    'user', r[7], 'model', model, 'created_ms', r[10], 'overdraft', '0', 'recovered', '1')
end
redis.call('HSET', KEYS[2], 'state', 'settled', 'cost', s(cost), 'estimated', estimated,
  'closed_ms', s(now_ms))
redis.call('PEXPIRE', KEYS[2], CLOSED_TTL_MS)
redis.call('ZREM', KEYS[3], rid)
local description = ''
if recovered then description = 'recovered from the settlement journal' end
local entry = {'op', 'settle', 'wallet', wallet, 'amount', s(cost),
  'ts_ms', s(now_ms), 'actor', actor, 'description', description, 'reservation', rid,
  'reserved', s(reserved), 'cost', s(cost), 'estimated', estimated, 'team', team,
  'group', group, 'user', r[7], 'model', model, 'input_tokens', input_tokens,
  'output_tokens', output_tokens, 'cached_tokens', cached_tokens, 'balance_after', s(bal),
  'reserved_ms', r[10] or '', 'label', label}
if recovered then
  entry[#entry + 1] = 'recovered'
  entry[#entry + 1] = '1'
end
redis.call('XADD', KEYS[1], '*', unpack(entry))
redis.call('HINCRBY', usage_key, 'spend|' .. who .. estimated .. '|' .. label, s(cost))
redis.call('HINCRBY', usage_key, 'requests|' .. who .. label, 1)
count_tokens()
burn(cost)
if reserved > cost then redis.call('PUBLISH', channel, 'funds:' .. wallet) end
return {recovered and 'recovered' or 'settled', wallet, s(reserved), s(cost)}
