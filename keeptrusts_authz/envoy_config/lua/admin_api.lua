-- admin_api.lua: the one error shape on the wallet API routes (/v1/wallets/*, /v1/reports/*).
-- Rendered once per REST route (envoy_config/admin_routes.py) with that route's accepted query
-- parameters, derived from the request message of its google.api.http rule in the descriptor:
--   @@ACCEPTED@@        Lua table: parameter name -> "int" | "string"
--   @@ACCEPTED_JSON@@   JSON array of the names, sorted (a Lua string literal)
--   @@ACCEPTED_TEXT@@   the names for a message, comma separated (a Lua string literal)
-- Request: an unknown query parameter, or a non-integer value for an integer one, is answered
-- 400 {"error": {"type": "invalid_input", "message", "parameter"|"field", "accepted"}} before the
-- transcoder sees it (the transcoder's own text, "Could not find field ... in the type ...",
-- never reaches the client).
-- Response: the service conveys every error as the `x-keeptrusts-error` header (gRPC trailing
-- metadata: the compact JSON error document, api/status.py); it becomes the body, replacing the
-- transcoder's google.rpc.Status JSON.
local ACCEPTED = @@ACCEPTED@@
local ACCEPTED_JSON = @@ACCEPTED_JSON@@
local ACCEPTED_TEXT = @@ACCEPTED_TEXT@@
local ERROR_HEADER = "x-keeptrusts-error"
local REASON_HEADER = "@@REASON_HEADER@@"

local ESCAPES = { ['"'] = '\\"', ['\\'] = '\\\\', ['\n'] = '\\n', ['\r'] = '\\r', ['\t'] = '\\t' }

local function json_string(s)
  local out = s:gsub('[%c"\\\128-\255]', function(c)
    return ESCAPES[c] or string.format('\\u%04x', c:byte())
  end)
  return '"' .. out .. '"'
end

local function refuse(handle, message, extra)
  local body = '{"error":{"type":"invalid_input","message":' .. json_string(message) .. extra .. '}}'
  handle:respond({
    [":status"] = "400",
    ["content-type"] = "application/json",
    [REASON_HEADER] = "invalid_input",
  }, body)
end

function envoy_on_request(handle)
  local path = handle:headers():get(":path") or ""
  local q = path:find("?", 1, true)
  if q == nil then return end
  for pair in path:sub(q + 1):gmatch("[^&]+") do
    local name, value = pair:match("^([^=]*)=?(.*)$")
    local kind = ACCEPTED[name]
    if kind == nil then
      local accepts = ACCEPTED_TEXT ~= "" and ("accepted: " .. ACCEPTED_TEXT) or "this route takes no query parameters"
      refuse(handle, "unknown query parameter '" .. name .. "'; " .. accepts,
        ',"parameter":' .. json_string(name) .. ',"accepted":' .. ACCEPTED_JSON)
      return
    end
    if kind == "int" and not value:match("^[0-9]+$") then
      refuse(handle, name .. ": must be a whole number", ',"field":' .. json_string(name))
      return
    end
  end
end

function envoy_on_response(handle)
  local headers = handle:headers()
  local err = headers:get(ERROR_HEADER)
  if err == nil then return end
  headers:remove(ERROR_HEADER)
  headers:replace("content-type", "application/json")
  headers:remove("content-length")
  handle:body(true):setBytes(err)
end
