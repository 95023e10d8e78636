-- keeptrusts usage filter (Envoy HTTP Lua filter, LuaJIT; no external libraries).
--
-- Response side: reads the token usage the provider reported and writes it to the dynamic
-- metadata namespace "@@USAGE_NAMESPACE@@", which Envoy sends with the gRPC access-log entry
-- (common_properties.metadata.filter_metadata). Bodies stream through unbuffered:
--   * JSON bodies are copied chunk by chunk into Lua (bounded by MAX_JSON_BYTES) and decoded
--     once at the end of the stream, so Envoy's buffer limit never turns a large response
--     (e.g. many embeddings) into a 500;
--   * SSE bodies are scanned line by line as chunks arrive; a partial last line is carried over
--     to the next chunk (bounded by MAX_LINE_BYTES).
-- Keys written: input_tokens, output_tokens, cached_tokens (cache reads), cache_creation_tokens
-- (cache writes), cache_creation_1h_tokens (those of them with the one-hour TTL), service_tier
-- (the tier the provider reports it billed at, "" when none), model, api (openai | openai_responses | anthropic | ""), usage_found, stream,
-- complete, streamed_output_bytes, streamed_choices. Token counts are as the provider reported them: for OpenAI (both APIs) input_tokens
-- INCLUDES cached_tokens and cache_creation_tokens is 0; for Anthropic input_tokens EXCLUDES
-- cache reads and writes (total prompt = input_tokens + cached_tokens + cache_creation_tokens).
--
-- streamed_output_bytes counts the generated text of a stream as it passed (content, refusals,
-- tool-call names and arguments, reasoning text, completions text; decoded UTF-8 bytes) and
-- streamed_choices the choices it belonged to: byte-level BPE tokens are at least one byte each,
-- so they bound the output tokens of a stream that was cut off before its usage arrived.
--
-- When the request side added stream_options.include_usage on the client's behalf (it writes
-- @@USAGE_INJECTED@@ to the namespace), the usage-only chunk ("choices": []) is read and then
-- removed from what the client receives: the client did not ask for it, and the common loop
-- `chunk.choices[0]` fails on it. Complete SSE lines are forwarded as they arrive; only a partial
-- last line waits for the rest of its line.
--
-- The metadata namespace and keys are filled in by the renderer from keeptrusts_authz.envoy_contract
-- (the service reads them from there too).
--
-- Envoy 1.40 fact: streamInfo():dynamicMetadata() must be fetched AFTER body()/bodyChunks(),
-- otherwise every set fails with "object used outside of proper scope".

local NS = "@@USAGE_NAMESPACE@@"
local MAX_JSON_BYTES = 16 * 1024 * 1024
local MAX_LINE_BYTES = 4 * 1024 * 1024
local MAX_DEPTH = 64

local byte, sub, find, char = string.byte, string.sub, string.find, string.char
local concat = table.concat
local floor = math.floor

-- ---------------------------------------------------------------------------------------------
-- A small JSON decoder. decode_value(s, i, spec, depth) returns value, next_index. `spec` selects
-- what to materialise in objects: true = everything, a table = only the listed keys (each with its
-- own spec); the other members are skipped without building Lua values. JSON null -> nil.
-- ---------------------------------------------------------------------------------------------

local function skip_ws(s, i)
  local _, e = find(s, "^[ \t\r\n]*", i)
  return e + 1
end

local function utf8char(cp)
  if cp < 0x80 then
    return char(cp)
  elseif cp < 0x800 then
    return char(0xC0 + floor(cp / 0x40), 0x80 + cp % 0x40)
  elseif cp < 0x10000 then
    return char(0xE0 + floor(cp / 0x1000), 0x80 + floor(cp / 0x40) % 0x40, 0x80 + cp % 0x40)
  end
  return char(0xF0 + floor(cp / 0x40000), 0x80 + floor(cp / 0x1000) % 0x40,
    0x80 + floor(cp / 0x40) % 0x40, 0x80 + cp % 0x40)
end

local ESCAPES = {
  [34] = '"', [92] = "\\", [47] = "/", [98] = "\b", [102] = "\f", [110] = "\n", [114] = "\r",
  [116] = "\t",
}

local function decode_string(s, i)
  local parts, n, j = nil, 0, i + 1
  while true do
    local k = find(s, '["\\]', j)
    if k == nil then
      error("unterminated string")
    end
    if byte(s, k) == 34 then
      if parts == nil then
        return sub(s, j, k - 1), k + 1
      end
      n = n + 1
      parts[n] = sub(s, j, k - 1)
      return concat(parts), k + 1
    end
    parts = parts or {}
    n = n + 1
    parts[n] = sub(s, j, k - 1)
    local c = byte(s, k + 1)
    if c == 117 then
      local cp = tonumber(sub(s, k + 2, k + 5), 16)
      if cp == nil then
        error("bad unicode escape")
      end
      j = k + 6
      if cp >= 0xD800 and cp <= 0xDBFF and sub(s, j, j + 1) == "\\u" then
        local lo = tonumber(sub(s, j + 2, j + 5), 16)
        if lo ~= nil and lo >= 0xDC00 and lo <= 0xDFFF then
          cp = 0x10000 + (cp - 0xD800) * 0x400 + (lo - 0xDC00)
          j = j + 6
        end
      end
      n = n + 1
      parts[n] = utf8char(cp)
    else
      local e = ESCAPES[c]
      if e == nil then
        error("bad escape")
      end
      n = n + 1
      parts[n] = e
      j = k + 2
    end
  end
end

local function skip_string(s, i)
  local j = i + 1
  while true do
    local k = find(s, '["\\]', j)
    if k == nil then
      error("unterminated string")
    end
    if byte(s, k) == 34 then
      return k + 1
    end
    j = k + 2
  end
end

-- An object member's key and the position of its value: `"key"` then `:`.
local function read_key(s, j)
  if byte(s, j) ~= 34 then
    error("expected key")
  end
  local key
  key, j = decode_string(s, j)
  j = skip_ws(s, j)
  if byte(s, j) ~= 58 then
    error("expected colon")
  end
  return key, skip_ws(s, j + 1)
end

local decode_value

local function skip_value(s, i)
  local c = byte(s, i)
  if c == 34 then
    return skip_string(s, i)
  elseif c == 123 or c == 91 then
    local depth, j = 0, i
    while true do
      local k = find(s, '["{}%[%]]', j)
      if k == nil then
        error("unterminated container")
      end
      local b = byte(s, k)
      if b == 34 then
        j = skip_string(s, k)
      elseif b == 123 or b == 91 then
        depth = depth + 1
        j = k + 1
      else
        depth = depth - 1
        j = k + 1
        if depth == 0 then
          return j
        end
      end
    end
  end
  local _, j = decode_value(s, i, true, 0)
  return j
end

decode_value = function(s, i, spec, depth)
  if depth > MAX_DEPTH then
    error("nested too deep")
  end
  local c = byte(s, i)
  if c == 123 then
    local obj = {}
    local j = skip_ws(s, i + 1)
    if byte(s, j) == 125 then
      return obj, j + 1
    end
    while true do
      local key
      key, j = read_key(s, j)
      local sub_spec = spec
      if spec ~= true then
        sub_spec = spec[key]
      end
      if sub_spec then
        obj[key], j = decode_value(s, j, sub_spec, depth + 1)
      else
        j = skip_value(s, j)
      end
      j = skip_ws(s, j)
      c = byte(s, j)
      if c == 125 then
        return obj, j + 1
      elseif c ~= 44 then
        error("expected , or }")
      end
      j = skip_ws(s, j + 1)
    end
  elseif c == 91 then
    local arr, n = {}, 0
    local j = skip_ws(s, i + 1)
    if byte(s, j) == 93 then
      return arr, j + 1
    end
    while true do
      n = n + 1
      arr[n], j = decode_value(s, j, spec, depth + 1)
      j = skip_ws(s, j)
      c = byte(s, j)
      if c == 93 then
        return arr, j + 1
      elseif c ~= 44 then
        error("expected , or ]")
      end
      j = skip_ws(s, j + 1)
    end
  elseif c == 34 then
    return decode_string(s, i)
  elseif c == 116 and sub(s, i, i + 3) == "true" then
    return true, i + 4
  elseif c == 102 and sub(s, i, i + 4) == "false" then
    return false, i + 5
  elseif c == 110 and sub(s, i, i + 3) == "null" then
    return nil, i + 4
  end
  local _, e = find(s, "^-?%d+%.?%d*[eE]?[-+]?%d*", i)
  if e == nil then
    error("unexpected character")
  end
  local v = tonumber(sub(s, i, e))
  if v == nil then
    error("bad number")
  end
  return v, e + 1
end

local function decode(s, spec)
  local i = skip_ws(s, 1)
  local v, j = decode_value(s, i, spec, 0)
  if skip_ws(s, j) <= #s then
    error("trailing data")
  end
  return v
end

-- ---------------------------------------------------------------------------------------------
-- Usage extraction, shared by JSON bodies and SSE events.
-- ---------------------------------------------------------------------------------------------

local USAGE_HOLDER = { model = true, usage = true, service_tier = true }
-- Chat/completions choices: the generated text of a stream chunk (a chat delta or a completions
-- choice's text).
local CHOICE = {
  index = true,
  text = true,
  delta = {
    content = true,
    refusal = true,
    reasoning_content = true,
    reasoning = true,
    tool_calls = { ["function"] = { name = true, arguments = true } },
  },
}
-- What a top-level JSON object or SSE event may hold that matters here; the rest is skipped.
-- `delta` is a string in Responses events and an object in Anthropic content_block_delta.
local SPEC = {
  type = true,
  object = true,
  model = true,
  usage = true,
  service_tier = true,
  message = USAGE_HOLDER,
  response = USAGE_HOLDER,
  choices = CHOICE,
  delta = true,
  output_index = true,
}

local function num(v)
  if type(v) == "number" and v >= 0 then
    return v
  end
  return nil
end

local function new_state(stream)
  return {
    stream = stream, found = false, complete = false, api = "", model = nil, tier = "",
    input = 0, output = 0, cached = 0, cache_creation = 0, cache_creation_1h = 0,
    streamed = 0, choices = {}, nchoices = 0,
  }
end

-- Streamed output: `n` more bytes of generated text in choice `key`.
local function add_streamed(st, key, v)
  if type(v) ~= "string" or v == "" then
    return
  end
  st.streamed = st.streamed + #v
  if not st.choices[key] then
    st.choices[key] = true
    st.nchoices = st.nchoices + 1
  end
end

local function count_choices(st, choices)
  for k, c in ipairs(choices) do
    if type(c) == "table" then
      local key = "c" .. tostring(num(c.index) or (k - 1))
      add_streamed(st, key, c.text)
      local d = c.delta
      if type(d) == "table" then
        add_streamed(st, key, d.content)
        add_streamed(st, key, d.refusal)
        add_streamed(st, key, d.reasoning_content)
        add_streamed(st, key, d.reasoning)
        if type(d.tool_calls) == "table" then
          for _, tc in ipairs(d.tool_calls) do
            local f = type(tc) == "table" and tc["function"]
            if type(f) == "table" then
              add_streamed(st, key, f.name)
              add_streamed(st, key, f.arguments)
            end
          end
        end
      end
    end
  end
end

-- OpenAI usage objects: the input count includes the cached tokens of its details object.
-- Chat/completions/embeddings name them prompt_tokens / completion_tokens /
-- prompt_tokens_details; the Responses API input_tokens / output_tokens / input_tokens_details.
local function apply_openai_usage(st, u, api, input_key, output_key, details_key)
  local input = num(u[input_key])
  if input == nil then
    return false
  end
  st.api = api
  st.input = input
  st.output = num(u[output_key]) or 0
  local d = u[details_key]
  st.cached = (type(d) == "table" and num(d.cached_tokens)) or 0
  st.cache_creation = 0
  st.found = true
  st.changed = true
  return true
end

local function apply_openai(st, u)
  return apply_openai_usage(st, u, "openai", "prompt_tokens", "completion_tokens",
    "prompt_tokens_details")
end

local function apply_responses(st, u)
  return apply_openai_usage(st, u, "openai_responses", "input_tokens", "output_tokens",
    "input_tokens_details")
end

-- The service tier the provider billed at (OpenAI `service_tier`, top level or in the Responses
-- object; Anthropic `usage.service_tier`): the settle prices that tier.
-- Published as soon as it changes: OpenAI reports it on every stream chunk, so a stream cut
-- off before its usage still tells the settle its tier (its bound is then that tier's).
local function take_tier(st, t)
  if type(t) == "string" and t ~= "" and #t <= 64 and t ~= st.tier then
    st.tier = t
    st.changed = true
  end
end

-- Anthropic: input_tokens EXCLUDES cache reads/writes (published as reported).
-- message_delta usage is cumulative, so any field it carries replaces the earlier value.
local function apply_anthropic(st, u)
  local seen = false
  local v = num(u.input_tokens)
  if v ~= nil then
    st.input, seen = v, true
  end
  v = num(u.output_tokens)
  if v ~= nil then
    st.output, seen = v, true
  end
  v = num(u.cache_read_input_tokens)
  if v ~= nil then
    st.cached, seen = v, true
  end
  v = num(u.cache_creation_input_tokens)
  if v ~= nil then
    st.cache_creation, seen = v, true
  end
  take_tier(st, u.service_tier)
  -- The writes by TTL: the 1h ones cost more than the 5-minute ones.
  local cc = u.cache_creation
  if type(cc) == "table" then
    v = num(cc.ephemeral_1h_input_tokens)
    if v ~= nil then
      st.cache_creation_1h, seen = v, true
    end
  end
  if seen then
    st.api = "anthropic"
    st.found = true
    st.changed = true
  end
  return seen
end

local function take_model(st, m)
  if type(m) == "string" and m ~= "" then
    st.model = m
  end
end

-- One decoded JSON object: a whole response body or one SSE event's data. Returns true for an
-- OpenAI usage-only stream chunk ("choices": [] with a usage object).
local function apply_object(st, o)
  if type(o) ~= "table" then
    return false
  end
  local t = o.type
  if st.stream then
    if type(o.choices) == "table" then
      count_choices(st, o.choices)
    elseif t == "content_block_delta" and type(o.delta) == "table" then
      add_streamed(st, "a", o.delta.text)
      add_streamed(st, "a", o.delta.partial_json)
      add_streamed(st, "a", o.delta.thinking)
    elseif type(t) == "string" and sub(t, -6) == ".delta" then
      add_streamed(st, "r" .. tostring(num(o.output_index) or 0), o.delta)
    end
  end
  if t == "message_start" and type(o.message) == "table" then
    take_model(st, o.message.model)
    if type(o.message.usage) == "table" then
      apply_anthropic(st, o.message.usage)
    end
  elseif t == "message_delta" then
    if type(o.usage) == "table" and apply_anthropic(st, o.usage) then
      st.complete = true
    end
  elseif type(t) == "string" and sub(t, 1, 9) == "response." then
    local r = o.response
    if type(r) == "table" then
      take_model(st, r.model)
      take_tier(st, r.service_tier)
      if (t == "response.completed" or t == "response.incomplete" or t == "response.failed")
          and type(r.usage) == "table" and apply_responses(st, r.usage) then
        st.complete = true
      end
    end
  else
    take_model(st, o.model)
    take_tier(st, o.service_tier)
    local u = o.usage
    if type(u) == "table" then
      local ok
      if t == "message" then
        ok = apply_anthropic(st, u)
      elseif u.prompt_tokens ~= nil then
        ok = apply_openai(st, u)
      else
        ok = apply_responses(st, u)
      end
      if ok and st.stream then
        st.complete = true
      end
      return ok and st.api == "openai" and type(o.choices) == "table" and #o.choices == 0
    end
  end
  return false
end

-- One SSE line (without its "\n"). Only "data:" lines with a JSON object matter; events that
-- carry neither usage nor generated text are not decoded once the model is known. Returns true
-- for an OpenAI usage-only chunk.
local function on_sse_line(st, line)
  if byte(line, 1) ~= 100 or sub(line, 1, 5) ~= "data:" then
    return false
  end
  local i = skip_ws(line, 6)
  if byte(line, i) ~= 123 then
    return false
  end
  if st.model ~= nil and find(line, '"usage"', i, true) == nil
      and find(line, 'delta"', i, true) == nil and find(line, '"text"', i, true) == nil then
    return false
  end
  local ok, o = pcall(decode, sub(line, i), SPEC)
  return ok and apply_object(st, o)
end

local function publish_streamed(md, st)
  md:set(NS, "@@USAGE_STREAMED_OUTPUT_BYTES@@", st.streamed)
  md:set(NS, "@@USAGE_STREAMED_CHOICES@@", st.nchoices)
end

local function publish(handle, st)
  local md = handle:streamInfo():dynamicMetadata()
  publish_streamed(md, st)
  md:set(NS, "@@USAGE_FOUND@@", st.found)
  md:set(NS, "@@USAGE_STREAM@@", st.stream)
  md:set(NS, "@@USAGE_COMPLETE@@", st.complete)
  md:set(NS, "@@USAGE_API@@", st.api)
  md:set(NS, "@@USAGE_MODEL@@", st.model or "")
  md:set(NS, "@@USAGE_SERVICE_TIER@@", st.tier)
  md:set(NS, "@@USAGE_INPUT_TOKENS@@", st.input)
  md:set(NS, "@@USAGE_OUTPUT_TOKENS@@", st.output)
  md:set(NS, "@@USAGE_CACHED_TOKENS@@", st.cached)
  md:set(NS, "@@USAGE_CACHE_CREATION_TOKENS@@", st.cache_creation)
  md:set(NS, "@@USAGE_CACHE_CREATION_HOUR_TOKENS@@", st.cache_creation_1h)
end

-- ---------------------------------------------------------------------------------------------
-- GET /v1/models of a group with allowed_models: the Check wrote @@AUTHZ_MODELS_FILTER@@ (one
-- anchored Lua pattern a line) to its metadata; keep only the `data` entries whose `id` matches.
-- The other members of the answer are kept as the provider wrote them. A 200 body that cannot
-- be read becomes an empty list (fail closed: never list models the group may not use).
-- ---------------------------------------------------------------------------------------------

local EMPTY_MODEL_LIST = '{"object":"list","data":[]}'

local function model_entry_id(s, i)
  if byte(s, i) ~= 123 then
    return nil
  end
  local j = skip_ws(s, i + 1)
  if byte(s, j) == 125 then
    return nil
  end
  while true do
    local key
    key, j = read_key(s, j)
    if key == "id" and byte(s, j) == 34 then
      local id = decode_string(s, j)
      return id
    end
    j = skip_ws(s, skip_value(s, j))
    local c = byte(s, j)
    if c == 125 then
      return nil
    elseif c ~= 44 then
      error("expected , or }")
    end
    j = skip_ws(s, j + 1)
  end
end

local function allowed_model(id, patterns)
  for _, p in ipairs(patterns) do
    if find(id, p) ~= nil then
      return true
    end
  end
  return false
end

local function filtered_model_list(s, patterns)
  local i = skip_ws(s, 1)
  if byte(s, i) ~= 123 then
    error("expected an object")
  end
  local j = skip_ws(s, i + 1)
  while true do
    local key
    key, j = read_key(s, j)
    if key == "data" then
      if byte(s, j) ~= 91 then
        error("data is not an array")
      end
      local data_end = skip_value(s, j)
      local kept, n = {}, 0
      local k = skip_ws(s, j + 1)
      if byte(s, k) ~= 93 then
        while true do
          local e = skip_value(s, k)
          local id = model_entry_id(s, k)
          if id ~= nil and allowed_model(id, patterns) then
            n = n + 1
            kept[n] = sub(s, k, e - 1)
          end
          k = skip_ws(s, e)
          local c = byte(s, k)
          if c == 93 then
            break
          elseif c ~= 44 then
            error("expected , or ]")
          end
          k = skip_ws(s, k + 1)
        end
      end
      return sub(s, 1, j - 1) .. "[" .. concat(kept, ",", 1, n) .. "]" .. sub(s, data_end)
    end
    j = skip_ws(s, skip_value(s, j))
    if byte(s, j) ~= 44 then
      error("no data member")
    end
    j = skip_ws(s, j + 1)
  end
end

local function filter_model_list(handle, spec)
  if handle:headers():get(":status") ~= "200" then
    return -- an error answer lists no models
  end
  local patterns, n = {}, 0
  for line in string.gmatch(spec, "[^\n]+") do
    n = n + 1
    patterns[n] = line
  end
  local body = handle:body()
  if body == nil then
    return
  end
  local len = body:length()
  local ok, out = pcall(filtered_model_list, body:getBytes(0, len), patterns)
  if not ok then
    out = EMPTY_MODEL_LIST
  end
  body:setBytes(out)
  handle:headers():replace("content-length", tostring(#out))
end

function envoy_on_response(handle)
  local authz = handle:streamInfo():dynamicMetadata():get("@@AUTHZ_NAMESPACE@@")
  if type(authz) == "table" and type(authz["@@AUTHZ_MODELS_FILTER@@"]) == "string" then
    filter_model_list(handle, authz["@@AUTHZ_MODELS_FILTER@@"])
    return
  end
  local headers = handle:headers()
  local ctype = string.lower(headers:get("content-type") or "")
  local encoding = string.lower(headers:get("content-encoding") or "identity")
  local is_sse = find(ctype, "text/event-stream", 1, true) ~= nil
  local is_json = (not is_sse) and find(ctype, "json", 1, true) ~= nil
  local st = new_state(is_sse)

  if encoding ~= "identity" or not (is_sse or is_json) then
    -- Nothing to read (the routes strip accept-encoding, so providers answer uncompressed).
    -- Drain through without looking so the metadata is written at the end of the stream.
    for _ in handle:bodyChunks() do
    end
    publish(handle, st)
    return
  end

  if is_json then
    local parts, n, size, overflow = {}, 0, 0, false
    for chunk in handle:bodyChunks() do
      local len = chunk:length()
      if len > 0 and not overflow then
        size = size + len
        if size > MAX_JSON_BYTES then
          overflow, parts, n = true, {}, 0
        else
          n = n + 1
          parts[n] = chunk:getBytes(0, len)
        end
      end
    end
    if not overflow and n > 0 then
      local ok, o = pcall(decode, concat(parts, "", 1, n), SPEC)
      if ok then
        apply_object(st, o)
        st.complete = true
      end
    end
    publish(handle, st)
    return
  end

  -- SSE: complete lines are handled as they arrive, and what they changed is published after
  -- each chunk, because a stream can end without its last chunk reaching this filter (the client
  -- closes after the final event, or goes away mid-stream: Envoy then never resumes the script); `pending` holds the partial last line. When
  -- the gateway injected include_usage, each chunk is rewritten to the complete lines it ends
  -- (minus the usage-only event) and the partial last line waits for its end; a line longer
  -- than MAX_LINE_BYTES is forwarded unread.
  local injected = false
  local requested = handle:streamInfo():dynamicMetadata():get(NS)
  if type(requested) == "table" and requested["@@USAGE_INJECTED@@"] == true then
    injected = true
    headers:remove("content-length")
  end
  local pending, np, plen, skipping, drop_blank = {}, 0, 0, false, false
  local published = 0
  publish(handle, st)
  for chunk in handle:bodyChunks() do
    local len = chunk:length()
    if len > 0 then
      local data = chunk:getBytes(0, len)
      local out, no = {}, 0
      local pos = 1
      while true do
        local nl = find(data, "\n", pos, true)
        if nl == nil then
          break
        end
        local line = sub(data, pos, nl - 1)
        if np > 0 then
          np = np + 1
          pending[np] = line
          line = concat(pending, "", 1, np)
          pending, np, plen = {}, 0, 0
        end
        if skipping then
          skipping = false
          no = no + 1
          out[no] = line .. "\n"
        else
          local text = line
          if byte(text, -1) == 13 then
            text = sub(text, 1, -2)
          end
          local usage_only = on_sse_line(st, text)
          if injected then
            if usage_only then
              drop_blank = true
            elseif drop_blank and text == "" then
              drop_blank = false
            else
              drop_blank = false
              no = no + 1
              out[no] = line .. "\n"
            end
          end
        end
        pos = nl + 1
      end
      if pos <= len then
        local rest = sub(data, pos)
        if skipping then
          no = no + 1
          out[no] = rest
        else
          plen = plen + #rest
          np = np + 1
          pending[np] = rest
          if plen > MAX_LINE_BYTES then
            if injected then
              no = no + 1
              out[no] = concat(pending, "", 1, np)
            end
            pending, np, plen, skipping = {}, 0, 0, true
          end
        end
      end
      if injected then
        chunk:setBytes(concat(out, "", 1, no))
      end
      if st.changed then
        st.changed, published = false, st.streamed
        publish(handle, st)
      elseif st.streamed ~= published then
        published = st.streamed
        publish_streamed(handle:streamInfo():dynamicMetadata(), st)
      end
    end
  end
  if np > 0 and not skipping then
    on_sse_line(st, concat(pending, "", 1, np))
  end
  publish(handle, st)
end

-- @@REQUEST_BEGIN@@
-- Request side (gateway.inject_stream_usage): OpenAI streams report usage only when the request
-- asks for it with stream_options.include_usage. For a JSON chat/completions or completions
-- request with "stream": true that does not say include_usage, add it, so the real usage arrives
-- in the final chunk (which has "choices": []) and the reservation settles at the real cost
-- instead of the estimate; the response side removes that chunk again. An explicit include_usage
-- (true or false) is left alone.

-- Returns the rewritten body, or nil when nothing is to change.
local function with_include_usage(s)
  local i = skip_ws(s, 1)
  if byte(s, i) ~= 123 then
    return nil
  end
  local stream, so_start, so_end, so_val = false, nil, nil, nil
  local j = skip_ws(s, i + 1)
  if byte(s, j) == 125 then
    return nil
  end
  while true do
    local key
    key, j = read_key(s, j)
    if key == "stream" then
      local v
      v, j = decode_value(s, j, true, 0)
      stream = (v == true)
    elseif key == "stream_options" then
      so_start = j
      so_val, j = decode_value(s, j, true, 0)
      so_end = j
    else
      j = skip_value(s, j)
    end
    j = skip_ws(s, j)
    local c = byte(s, j)
    if c == 125 then
      break
    elseif c ~= 44 then
      error("expected , or }")
    end
    j = skip_ws(s, j + 1)
  end
  if not stream then
    return nil
  end
  if so_start == nil then
    return sub(s, 1, i) .. '"stream_options":{"include_usage":true},' .. sub(s, i + 1)
  end
  if so_val == nil then
    return sub(s, 1, so_start - 1) .. '{"include_usage":true}' .. sub(s, so_end)
  end
  if type(so_val) ~= "table" or so_val.include_usage ~= nil then
    return nil
  end
  local sep = ","
  if byte(s, skip_ws(s, so_start + 1)) == 125 then
    sep = ""
  end
  return sub(s, 1, so_start) .. '"include_usage":true' .. sep .. sub(s, so_start + 1)
end

function envoy_on_request(handle)
  local headers = handle:headers()
  if headers:get(":method") ~= "POST" then
    return
  end
  local path = string.match(headers:get(":path") or "", "^[^?]*")
  if find(path, "/completions$") == nil then
    return
  end
  if find(string.lower(headers:get("content-type") or ""), "json", 1, true) == nil then
    return
  end
  local body = handle:body()
  if body == nil then
    return
  end
  local len = body:length()
  if len == 0 then
    return
  end
  local s = body:getBytes(0, len)
  if find(s, '"stream"', 1, true) == nil then
    return
  end
  local ok, rewritten = pcall(with_include_usage, s)
  if ok and rewritten ~= nil then
    body:setBytes(rewritten)
    local h = handle:headers()
    if h:get("content-length") ~= nil then
      h:replace("content-length", tostring(#rewritten))
    end
    handle:streamInfo():dynamicMetadata():set(NS, "@@USAGE_INJECTED@@", true)
  end
end
-- @@REQUEST_END@@
