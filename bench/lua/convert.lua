-- Guest -> sign-up/email conversions. Run with one connection per thread (-t N -c N):
-- each thread alternates a guest sign-in and a sign-up that carries the guest's cookie.
local threads = {}
function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
end

local origin = os.getenv("BENCH_ORIGIN")
local phase, cookie, n = "guest", nil, 0
-- Acknowledged (200) guest sign-ins and conversions, to check against the database.
guests, converted = 0, 0

function request()
  local headers = { ["Content-Type"] = "application/json", ["Origin"] = origin }
  if phase == "guest" or cookie == nil then
    phase = "guest"
    return wrk.format("POST", "/api/auth/sign-in/anonymous", headers, "{}")
  end
  n = n + 1
  headers["Cookie"] = cookie
  local body = string.format('{"name":"B","email":"c%d-%d-%d@example.com","password":"password123"}', tid, n, os.time())
  return wrk.format("POST", "/api/auth/sign-up/email", headers, body)
end

function response(status, headers, body)
  if phase == "guest" then
    local set = headers["Set-Cookie"] or headers["set-cookie"]
    if status == 200 and set then
      guests = guests + 1
      cookie = set:match("^([^;]+)")
      phase = "convert"
    end
  else
    if status == 200 then
      converted = converted + 1
    end
    phase, cookie = "guest", nil
  end
end

function done(summary, latency, requests)
  local g, c = 0, 0
  for _, thread in ipairs(threads) do
    g = g + thread:get("guests")
    c = c + thread:get("converted")
  end
  io.write(string.format("acknowledged guests=%d converted=%d\n", g, c))
end
