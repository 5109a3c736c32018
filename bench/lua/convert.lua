-- Guest -> sign-up/email conversions. Run with one connection per thread (-t N -c N):
-- each thread alternates a guest sign-in and a sign-up that carries the guest's cookie.
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end

local origin = os.getenv("BENCH_ORIGIN")
local phase, cookie, n = "guest", nil, 0

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
      cookie = set:match("^([^;]+)")
      phase = "convert"
    end
  else
    phase, cookie = "guest", nil
  end
end
