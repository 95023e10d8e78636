-- reserve.lua: the Check hot path. Funds a reservation from the FIRST candidate wallet that
-- exists and has balance >= amount (never split); otherwise applies the policy. One ledger entry
-- per funded reservation; refusals only bump the monthly denial counter.
-- Store-loss guard: the org's epoch marker (written by credit.lua or store rearm, never here) must
-- be present and, when the caller knows one, be the epoch it saw; otherwise the store came back
-- empty or was re-initialized behind the service's back, and nothing is reserved ('regressed').
-- A reserve never creates a wallet: a warn overdraft needs the overdraft wallet to exist; a
-- showback overdraft may open it only in an armed store (showback never denies, but must not
-- book on top of a lost store).
-- KEYS[1] ledger stream            kt:{org}:ledger
-- KEYS[2] reservation hash         kt:{org}:r:<reservation_id>
-- KEYS[3] deadline index zset      kt:{org}:r:deadlines
-- KEYS[4] wallet id set            kt:{org}:wallets
-- KEYS[5] denial counters hash     kt:{org}:stats:<yyyy-mm>
-- KEYS[6] epoch marker hash        kt:{org}:epoch
-- KEYS[7 .. 6+n] candidate wallet hashes in cascade order
-- KEYS[7+n] overdraft wallet hash (present only when ARGV[9] ~= '')
-- ARGV[1] reservation id   ARGV[2] amount (micros, >= 0)   ARGV[3] policy: block|hold|warn|showback
-- ARGV[4] ttl ms (> 0)     ARGV[5] team   ARGV[6] group   ARGV[7] user   ARGV[8] model
-- ARGV[9] overdraft wallet id or ''   ARGV[10] n (number of candidates)
-- ARGV[11 .. 10+n] candidate wallet ids   ARGV[11+n] actor
-- ARGV[12+n] expected epoch id or '' (the caller has not seen one: a missing marker is a new org)
-- Users belong to teams: a USER candidate that exists must carry `team` == ARGV[5] (its `team`
-- field, written when it was funded for that team); otherwise nothing is reserved and the
-- request is refused as {'foreign_user', wallet, its team or ''} (a key of one team naming a
-- user of another never reaches that user's wallet, nor falls through to its own).
-- Returns {outcome, wallet or '', amount, id_1, available_1, id_2, available_2, ...} where outcome
-- is reserved|overdraft|blocked|hold|duplicate|regressed and the id/available pairs are the candidates that
-- exist, as seen (a duplicate of an OPEN reservation returns the original wallet and amount, no
-- pairs, and marks it `adopted`; an id released before it was reserved, or already closed, is
-- refused as blocked; regressed returns {'regressed', found epoch or ''}).
local rid = ARGV[1]
local amount = tonumber(ARGV[2])
local policy = ARGV[3]
local ttl_ms = tonumber(ARGV[4])
local team = ARGV[5]
local group = ARGV[6]
local user = ARGV[7]
local model = ARGV[8]
local overdraft_id = ARGV[9]
local n = tonumber(ARGV[10])
local actor = ARGV[11 + n]
local expected_epoch = ARGV[12 + n] or ''

if not amount or amount < 0 then return redis.error_reply('invalid amount') end
if not ttl_ms or ttl_ms <= 0 then return redis.error_reply('invalid ttl') end

local epoch = redis.call('HGET', KEYS[6], 'id')
if expected_epoch ~= '' and epoch ~= expected_epoch then
  return {'regressed', epoch or ''}
end

for i = 1, n do
  local id = ARGV[10 + i]
  if string.sub(id, 1, 5) == 'user:' then
    local w = redis.call('HMGET', KEYS[6 + i], 'balance', 'team')
    if w[1] and w[2] ~= team then return {'foreign_user', id, w[2] or ''} end
  end
end

local prev = redis.call('HMGET', KEYS[2], 'wallet', 'amount', 'tombstone', 'state')
-- Released before it arrived (the Check gave up on it): never fund it now.
if prev[3] then return {'blocked', '', s(amount)} end
if prev[1] then
  -- The same id again: a retried script call, or a Check retried on another replica after a
  -- reset (ids derive from Envoy's per-request check id). An open reservation is adopted: the
  -- mark stops the first attempt's compensating release (release.lua ARGV[7]) from closing it
  -- under the request it now funds. A closed one funds nothing any more.
  if prev[4] ~= 'open' then return {'blocked', '', s(amount)} end
  redis.call('HSET', KEYS[2], 'adopted', '1')
  return {'duplicate', prev[1], prev[2]}
end

-- Look at the cascade: the first wallet that exists and can fund the whole amount wins.
local funded_key, funded_id = nil, nil
local seen = {}
for i = 1, n do
  local raw = redis.call('HGET', KEYS[6 + i], 'balance')
  if raw then
    local available = tonumber(raw)
    seen[#seen + 1] = ARGV[10 + i]
    seen[#seen + 1] = raw
    if available >= amount then
      funded_key, funded_id = KEYS[6 + i], ARGV[10 + i]
      break
    end
  end
end

local outcome = 'reserved'
if not funded_key then
  if policy == 'warn' or policy == 'showback' then
    if overdraft_id == '' then return redis.error_reply('overdraft policy needs an overdraft wallet') end
    local exists = redis.call('EXISTS', KEYS[7 + n]) == 1
    if exists or (policy == 'showback' and epoch) then
      outcome = 'overdraft'
      funded_key, funded_id = KEYS[7 + n], overdraft_id
    end
  end
  if not funded_key then
    local counter = (policy == 'hold') and 'held' or 'blocked'
    redis.call('HINCRBY', KEYS[5], team .. '|' .. counter, 1)
    local result = {(policy == 'hold') and 'hold' or 'blocked', '', s(amount)}
    for i = 1, #seen do result[#result + 1] = seen[i] end
    return result
  end
end

-- The one write path: wallet, reservation, deadline index, ledger.
local now_ms = redis_now_ms()
if redis.call('EXISTS', funded_key) == 0 then
  create_wallet(funded_key, KEYS[4], funded_id, now_ms)
end
local bal = redis.call('HINCRBY', funded_key, 'balance', s(-amount))
redis.call('HINCRBY', funded_key, 'reserved', s(amount))
local deadline = now_ms + ttl_ms
local overdraft = (outcome == 'overdraft') and '1' or '0'
redis.call('HSET', KEYS[2], 'wallet', funded_id, 'amount', s(amount), 'state', 'open',
  'team', team, 'group', group, 'user', user, 'model', model, 'deadline_ms', s(deadline),
  'cost', '', 'overdraft', overdraft, 'created_ms', s(now_ms))
redis.call('ZADD', KEYS[3], deadline, rid)
redis.call('XADD', KEYS[1], '*', 'op', 'reserve', 'wallet', funded_id, 'amount', s(amount),
  'ts_ms', s(now_ms), 'actor', actor, 'description', '', 'reservation', rid,
  'overdraft', overdraft, 'team', team, 'group', group, 'user', user, 'model', model,
  'balance_after', s(bal))
local result = {outcome, funded_id, s(amount)}
for i = 1, #seen do result[#result + 1] = seen[i] end
return result
