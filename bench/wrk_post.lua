-- wrk script: POST Segment events with a fresh messageId on every request (so nothing is deduplicated).
-- BATCH (env) events per request; 1 = a single /v1/track call, more = /v1/batch.
local batch = tonumber(os.getenv("BATCH") or "1")
local counter = 0
local prefix = tostring(math.random(1, 1e9)) .. "-" .. tostring(os.time()) .. "-"
local props = '"properties":{"plan":"pro","revenue":42.5,"sku":"SKU-1234","currency":"EUR","items":3}'
local ctx = '"context":{"library":{"name":"analytics.js","version":"5.2.0"},"page":{"url":"https://shop.example/p/1?utm_source=news","path":"/p/1","title":"Product","referrer":"https://www.google.com/"},"userAgent":"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36","locale":"en-GB"}'

local function event()
  counter = counter + 1
  return '{"type":"track","event":"Product Viewed","anonymousId":"anon-' .. (counter % 5000) ..
    '","messageId":"' .. prefix .. counter .. '",' .. props .. ',' .. ctx .. '}'
end

request = function()
  if batch == 1 then
    return wrk.format("POST", "/v1/track", nil, event())
  end
  local items = {}
  for i = 1, batch do items[i] = event() end
  return wrk.format("POST", "/v1/batch", nil, '{"batch":[' .. table.concat(items, ",") .. ']}')
end

wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = os.getenv("AUTH") or ""
