-- wrk script: POST /api/transmissions, each request to a different number, each thread
-- stopping after BENCH_PER_THREAD requests. BENCH_TOKEN is the bearer token.
local threads = {}
local counter = 0

function setup(thread)
    counter = counter + 1
    thread:set("tid", counter)
    table.insert(threads, thread)
end

function init(args)
    n = 0
    limit = tonumber(os.getenv("BENCH_PER_THREAD") or "50000")
    token = os.getenv("BENCH_TOKEN")
    headers = { ["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. token }
end

function request()
    n = n + 1
    local to = string.format("+2547%02d%06d", tid, n)
    local body = '{"to":"' .. to .. '","body":"Benchmark message ' .. n .. ' from sauti"}'
    return wrk.format("POST", "/api/transmissions", headers, body)
end

function response(status, headers, body)
    if status ~= 201 then
        io.stderr:write("unexpected status " .. status .. ": " .. body .. "\n")
    end
    if n >= limit then
        wrk.thread:stop()
    end
end
