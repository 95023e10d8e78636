-- period_rollover.lua: apply ONE budget period boundary to one wallet, at most once per
-- (wallet, period id): the previous balance is kept, returned to the org pool or (debt) forgiven
-- by the rollover policy, the period's amount is added, and the net move comes from the org pool
-- (never a negative pool) + one ledger entry `period_rollover`. Uses the prelude's s,
-- redis_now_ms and create_wallet (prelude.lua, prepended by the loader).
-- KEYS[1] ledger stream            kt:{org}:ledger
-- KEYS[2] wallet id set            kt:{org}:wallets
-- KEYS[3] org wallet hash          kt:{org}:w:org
-- KEYS[4] target wallet hash       kt:{org}:w:<wallet>
-- KEYS[5] period state hash        kt:{org}:pw:<wallet>  (`period`, `entry`, `allocation`,
--   `carried_in`, `returned`, `forgiven`, `applied_ms`, `spent_at_start`, `rollover`)
-- ARGV[1] wallet id   ARGV[2] period id (ids of one kind sort as strings: 2026-12 < 2027-01,
--   2026-W53 < 2027-W01, 2027-Q1 < 2027-Q2)   ARGV[3] rollover reset|carry|carry_capped|carry_debt
-- ARGV[4] amount (micros, > 0)   ARGV[5] carry cap (micros, >= 0; carry_capped only)
-- ARGV[6] actor   ARGV[7] description   ARGV[8] events channel kt:{org}:events
-- ARGV[9] period start (Unix ms; reports place the entry in its period by it, not by ts_ms)
-- ARGV[10] the budget's team: a user wallet without a `team` field (or created here) gets it
-- Policy, with b the wallet's available balance at the boundary and A the amount:
--   reset        carried 0;             returned max(b,0); forgiven max(-b,0)
--   carry        carried max(b,0);      returned 0;        forgiven max(-b,0)
--   carry_capped carried min(max(b,0),cap); returned max(b,0)-carried; forgiven max(-b,0)
--   carry_debt   carried b (a debt reduces the new period); returned 0; forgiven 0
--   new balance = carried + A; delta (from the pool) = A - returned + forgiven
-- Returns {'applied', entry_id, delta, balance_after, org_balance}
--         {'replayed', entry_id}                 this period was applied already
--         {'stale', applied_period}              a later period is applied already
--         {'insufficient', org_balance, delta}   the pool cannot fund it: nothing changed
local wallet = ARGV[1]
local period = ARGV[2]
local rollover = ARGV[3]
local amount = tonumber(ARGV[4])
local cap = tonumber(ARGV[5])
local actor = ARGV[6]
local description = ARGV[7]
local channel = ARGV[8]
local period_start_ms = ARGV[9]
local team = ARGV[10] or ''
local MAX = 1000000000000000

if not amount or amount <= 0 or amount > MAX then return redis.error_reply('invalid amount') end
if not cap or cap < 0 or cap > MAX then return redis.error_reply('invalid carry cap') end
local state = redis.call('HMGET', KEYS[5], 'period', 'entry')
if state[1] then
  if state[1] == period then return {'replayed', state[2]} end
  if state[1] > period then return {'stale', state[1]} end
end

local w = redis.call('HMGET', KEYS[4], 'balance', 'spent_total')
local b = tonumber(w[1] or '0')
local spent = tonumber(w[2] or '0')
local pos = b > 0 and b or 0
local debt = b < 0 and -b or 0
local carried, returned, forgiven
if rollover == 'reset' then
  carried, returned, forgiven = 0, pos, debt
elseif rollover == 'carry' then
  carried, returned, forgiven = pos, 0, debt
elseif rollover == 'carry_capped' then
  carried = pos < cap and pos or cap
  returned, forgiven = pos - carried, debt
elseif rollover == 'carry_debt' then
  carried, returned, forgiven = b, 0, 0
else
  return redis.error_reply('invalid rollover')
end
local delta = amount - returned + forgiven
local org_bal = tonumber(redis.call('HGET', KEYS[3], 'balance') or '0')
if delta > org_bal then return {'insufficient', s(org_bal), s(delta)} end

local now_ms = redis_now_ms()
if not w[1] then create_wallet(KEYS[4], KEYS[2], wallet, now_ms) end
if team ~= '' and string.sub(wallet, 1, 5) == 'user:' then
  redis.call('HSETNX', KEYS[4], 'team', team)
end
org_bal = redis.call('HINCRBY', KEYS[3], 'balance', s(-delta))
local bal = redis.call('HINCRBY', KEYS[4], 'balance', s(delta))
redis.call('HINCRBY', KEYS[4], 'allocated_total', s(delta))
local id = redis.call('XADD', KEYS[1], '*', 'op', 'period_rollover', 'wallet', wallet,
  'amount', s(amount), 'ts_ms', s(now_ms), 'actor', actor, 'description', description,
  'from', 'org', 'to', wallet, 'period', period, 'period_start_ms', period_start_ms, 'rollover', rollover,
  'delta', s(delta),
  'carried_in', s(carried), 'returned', s(returned), 'forgiven', s(forgiven),
  'balance_after', s(bal))
redis.call('HSET', KEYS[5], 'period', period, 'entry', id, 'allocation', s(amount),
  'carried_in', s(carried), 'returned', s(returned), 'forgiven', s(forgiven),
  'applied_ms', s(now_ms), 'spent_at_start', s(spent), 'rollover', rollover)
if delta > 0 then redis.call('PUBLISH', channel, 'funds:' .. wallet) end
return {'applied', id, s(delta), s(bal), s(org_bal)}
