-- wrk script: POST the decision request the criterion bench uses
-- (host/benches/decide.rs): 2 series × 40 samples per side, 2 burn rates,
-- a change; the five built-ins bound. No `time`: the server decides at its
-- own clock.
local function series(n, f)
  local t = {}
  for i = 0, n - 1 do t[#t + 1] = f(i) end
  return "[" .. table.concat(t, ",") .. "]"
end
local baseline = series(40, function(i) return string.format("%.1f", 100 + i % 7) end)
local canary = series(40, function(i) return string.format("%.1f", 101 + i % 5) end)
local errors = series(40, function(i) return string.format("%.4f", 0.001 + 0.0001 * (i % 3)) end)
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"deployment":{"service":"checkout","environment":"production","version":"v2",'
  .. '"previous_version":"v1","traffic_percent":10.0},'
  .. '"change":{"files_changed":4,"lines_added":120,"lines_removed":30,'
  .. '"paths":["src/cart.rs","src/api/handlers.rs"],"ticket":"OPS-7"},'
  .. '"metrics":[{"name":"latency_p99_ms","baseline":' .. baseline .. ',"canary":' .. canary .. '},'
  .. '{"name":"error_rate","baseline":' .. errors .. ',"canary":' .. errors .. '},'
  .. '{"name":"burn_rate_1h","value":0.8},{"name":"burn_rate_5m","value":0.9}]}'
