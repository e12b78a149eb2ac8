-- wrk script: sends TOKEN, and for POST a schedule body; prints a JSON line of results.
local token = os.getenv("TOKEN")
local mode = os.getenv("MODE") or "get"
wrk.headers["Authorization"] = "Token " .. token
if mode == "post" then
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.body = '{"endpoint": "http://127.0.0.1:9/hook", "interval_definition": "5 minutes", "payload": {"hello": "world", "n": 1}}'
end

done = function(summary, latency, requests)
  local seconds = summary.duration / 1e6
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout + summary.errors.status
  io.write(string.format(
    'RESULT {"mode":"%s","requests":%d,"seconds":%.2f,"rps":%.1f,"p50_ms":%.2f,"p90_ms":%.2f,"p99_ms":%.2f,"max_ms":%.2f,"errors":%d}\n',
    mode, summary.requests, seconds, summary.requests / seconds,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000, latency.max / 1000, errors))
end
