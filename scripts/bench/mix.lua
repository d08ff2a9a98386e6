-- wrk script of scripts/bench-load: the Prompter routes in turn, with small JSON bodies.
-- Template `t-1` (name "bench") exists before the load, so the create is always a duplicate
-- (409, one request in six: wrk counts it as a non-2xx response, as expected).
-- Every request names its tenant (`x-tenant-id`, 25 tenants in turn, one per pass over the
-- routes), as a multi-tenant client would: the declared metrics of
-- envoy/examples/custom-metrics.json label requests by tenant, keeping the first 20 and
-- counting the others as `other`. Filters that do not read the header only carry it.
local TENANTS = 25
local requests = {}
local next_index = 0

init = function(args)
  for t = 1, TENANTS do
    local tenant = string.format("tenant-%02d", t)
    local plain = { ["x-tenant-id"] = tenant }
    local json = { ["x-tenant-id"] = tenant, ["Content-Type"] = "application/json" }
    local mix = {
      wrk.format("POST", "/api/prompt-templates", json, '{"name":"bench","body":"Hello {name}"}'),
      wrk.format("GET", "/api/prompt-templates", plain),
      wrk.format("GET", "/api/prompt-templates/t-1", plain),
      wrk.format("POST", "/api/prompt-templates/t-1/ensure-version", json,
        '{"provider":"openai","model_id":"gpt-4o"}'),
      wrk.format("POST", "/api/prompt-templates/t-1/run", json,
        '{"provider":"openai","model_id":"gpt-4o","variables":{"name":"Ada"}}'),
      wrk.format("GET", "/healthz", plain),
    }
    for _, request in ipairs(mix) do
      requests[#requests + 1] = request
    end
  end
end

request = function()
  next_index = next_index % #requests + 1
  return requests[next_index]
end

-- One machine-readable line for scripts/bench-load.
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "RESULT requests=%d duration_us=%d p50_us=%d p99_us=%d non2xx=%d socket_errors=%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.status, e.connect + e.read + e.write + e.timeout))
end
