-- wrk script for bench/http.sh.
--
--   wrk ... -s bench/http.lua URL -- get FIRST_ID LAST_ID   GET /api/access_tokens/:id, ids drawn at random
--                                                          from FIRST_ID..LAST_ID so the run is not one hot row
--   wrk ... -s bench/http.lua URL -- path /api/...          GET one fixed path (query already percent-encoded)
--   wrk ... -s bench/http.lua URL -- verify                 POST /api/verifications, a new number each time
--   wrk ... -s bench/http.lua URL -- check FIRST_ID LAST_ID POST /api/verifications/:id/verification_checks with
--                                                          a wrong code, ids in turn (each is evaluated 5 times)
--
-- Headers (Authorization) come from wrk's -H. done() prints one machine-readable BENCH line
-- so the driver does not have to parse wrk's human-oriented, unit-varying text.

local mode, first, last, path

function init(args)
  mode = args[1]
  if mode == "get" then
    first, last = tonumber(args[2]), tonumber(args[3])
    -- Each wrk thread has its own Lua state; seed them differently.
    math.randomseed(math.floor(os.clock() * 1000000) + tonumber(tostring({}):match("0x(%x+)") or "0", 16) % 100000)
  elseif mode == "path" then
    path = args[2]
  elseif mode == "verify" or mode == "check" then
    first, last = tonumber(args[2] or "1"), tonumber(args[3] or "1")
    -- Distinct numbers per thread: the thread's table address picks its block.
    counter = (tonumber(tostring({}):match("0x(%x+)") or "0", 16) % 1000) * 1000000
  else
    error("usage: -- get FIRST_ID LAST_ID | -- path /api/... | -- verify | -- check FIRST_ID LAST_ID")
  end
end

-- wrk.format replaces wrk.headers (Authorization from -H, Host) with the table it is given.
local function json_headers()
  local h = {}
  for k, v in pairs(wrk.headers) do h[k] = v end
  h["Content-Type"] = "application/json"
  return h
end

function request()
  if mode == "verify" then
    counter = counter + 1
    return wrk.format("POST", "/api/verifications", json_headers(),
      string.format('{"to":"+2547%08d"}', counter % 100000000))
  elseif mode == "check" then
    counter = counter + 1
    local id = first + (counter % (last - first + 1))
    return wrk.format("POST", "/api/verifications/" .. id .. "/verification_checks",
      json_headers(), '{"code":"0000000000"}')
  end
  if mode == "get" then
    return wrk.format("GET", "/api/access_tokens/" .. math.random(first, last))
  end
  return wrk.format("GET", path)
end

function done(summary, latency, requests)
  local seconds = summary.duration / 1000000
  local e = summary.errors
  io.write(string.format(
    "BENCH rps=%.0f p50_ms=%.2f p99_ms=%.2f requests=%d non2xx=%d socket_errors=%d\n",
    summary.requests / seconds,
    latency:percentile(50) / 1000,
    latency:percentile(99) / 1000,
    summary.requests,
    e.status,
    e.connect + e.read + e.write + e.timeout))
end
