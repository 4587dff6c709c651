-- Every window of a limit in one call (app/web/ratelimit.py, OneTripFixedWindow): for each
-- window, the shortest first, INCRBY the cost and set its expiry when this hit opened the window
-- (as limits' own incr_expire.lua), then answer its count and TTL; stop after the first window
-- over its limit, as Flask-Limiter stops counting at the first breach.
-- KEYS: the windows' keys. ARGV: the cost, then each window's expiry and amount.
local cost = tonumber(ARGV[1])
local out = {}
for i, key in ipairs(KEYS) do
    local count = redis.call("INCRBY", key, cost)
    if count == cost then
        redis.call("EXPIRE", key, ARGV[2 * i])
    end
    out[#out + 1] = count
    out[#out + 1] = redis.call("TTL", key)
    if count > tonumber(ARGV[2 * i + 1]) then
        break
    end
end
return out
