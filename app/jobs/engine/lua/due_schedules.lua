-- What a ticker polls, in one round trip and by the Redis server's clock (so tickers on hosts
-- whose clocks disagree still agree on what is due).
-- KEYS[1]: the due set (schedule id -> next tick, Unix seconds). ARGV[1]: at most this many ids.
-- Returns {seconds, microseconds (the server's TIME), {due ids}, the earliest next tick or false}.
-- Numbers travel as strings: a Lua number in a reply would be cut to an integer.
local now = redis.call('TIME')
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now[1] .. '.' .. string.format('%06d', tonumber(now[2])),
  'LIMIT', 0, tonumber(ARGV[1]))
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {now[1], now[2], due, first[2] or false}
