-- The clock of the Redis server that holds the schedules. A script with a key, not TIME: in a
-- cluster it then runs on the node of offload's slot, and no cluster pipeline refuses it.
-- KEYS[1]: any key of offload's slot. Returns {seconds, microseconds}.
local now = redis.call('TIME')
return {now[1], now[2]}
