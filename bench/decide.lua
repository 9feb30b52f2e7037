-- wrk script: POST one decision request (five built-ins, six canary samples).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"deployment":{"service":"api","environment":"prod","version":"v2"},"metrics":[{"name":"error_rate","canary":[0.001,0.002,0.001,0.001,0.002,0.001]}]}'
