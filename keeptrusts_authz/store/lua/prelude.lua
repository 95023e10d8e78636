-- prelude.lua: helpers every script shares. The loader (store.redis_store.load_script_text)
-- prepends this file to each script, so a script file holds only its own logic.
-- No KEYS/ARGV of its own; every helper takes the keys it touches as arguments.
local IDEM_TTL_MS = 86400000

-- Integer formatter: Lua numbers are doubles; '%d' writes them without exponent or '.0'.
local function s(n) return string.format('%d', n) end

-- Unix time in ms from the server clock (the same clock for every replica of the service).
local function redis_now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- yyyy-mm-dd (UTC) of a Unix time in ms (days-to-civil, proleptic Gregorian).
local function utc_day(ms)
  local z = math.floor(ms / 86400000) + 719468
  local era = math.floor(z / 146097)
  local doe = z - era * 146097
  local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524)
    - math.floor(doe / 146096)) / 365)
  local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
  local mp = math.floor((5 * doy + 2) / 153)
  local day = doy - math.floor((153 * mp + 2) / 5) + 1
  local month = mp < 10 and mp + 3 or mp - 9
  local year = yoe + era * 400
  if month <= 2 then year = year + 1 end
  return string.format('%04d-%02d-%02d', year, month, day)
end

-- Largest magnitude a wallet balance or total may reach: 2^53 - 1 micros. Lua numbers are
-- doubles, exact only below 2^53: beyond it balance_after (and the audit's replay) would round.
local MAX_MICROS = 9007199254740991

-- Checked before any write: the first of `fields` of hash `key` that would leave
-- [-MAX_MICROS, MAX_MICROS] once `delta` is added to it, or nil when all stay inside.
local function over_bound(key, fields, delta)
  local values = redis.call('HMGET', key, unpack(fields))
  for i = 1, #fields do
    local n = tonumber(values[i] or '0') + delta
    if n > MAX_MICROS or n < -MAX_MICROS then return fields[i] end
  end
  return nil
end

-- A new wallet hash (every field zero) and its id in the org's wallet set.
local function create_wallet(wallet_key, wallets_key, wallet_id, now_ms)
  redis.call('HSET', wallet_key, 'balance', 0, 'reserved', 0, 'allocated_total', 0,
    'spent_total', 0, 'created_ms', s(now_ms))
  redis.call('SADD', wallets_key, wallet_id)
end

-- Idempotency of admin moves: the stored reply of an earlier call with the same key (prefixed
-- 'replayed'), {'conflict'} when that call had another fingerprint, nil for a first call.
local function idem_replay(use_idem, idem_key, fingerprint)
  if not use_idem then return nil end
  local prev = redis.call('HMGET', idem_key, 'fingerprint', 'result')
  if not prev[1] then return nil end
  if prev[1] ~= fingerprint then return {'conflict'} end
  local r = cjson.decode(prev[2])
  table.insert(r, 1, 'replayed')
  return r
end

-- Remember a first call's reply for IDEM_TTL_MS under its key.
local function idem_record(use_idem, idem_key, fingerprint, result)
  if not use_idem then return end
  redis.call('HSET', idem_key, 'fingerprint', fingerprint, 'result', cjson.encode(result))
  redis.call('PEXPIRE', idem_key, IDEM_TTL_MS)
end

