-- A submission (one job, or a batch) in one round trip and one fsync: its checks, then its writes.
-- The writes are RQ's own (app/jobs/engine/submit.py records what RQ's enqueue, schedule or
-- dependency code would send in a transaction), with offload's index, counters, batch record and
-- idempotency answer after them, so a job is stored exactly as RQ stores it; the checks are what
-- a WATCH and a separate LLEN did before, made atomic with the writes instead:
--   * each queue's depth: LLEN + the jobs to add must not go over its limit (QueueFull);
--   * each key that must not exist yet (an Idempotency-Key's answer): if it does, nothing is
--     written and its value is answered (the first answer to replay, or a conflict);
--   * each guard: a field of a hash (a dependency's status) is still what the caller read, or
--     nothing is written and the caller reads and tries again.
--   * first of all, the web's rate-limit windows are counted, as limits' fixed window counts them
--     (INCRBY the cost, EXPIRE when the hit opened the window), the shortest first; the first
--     over its amount ends the script before anything is written ('limited'); a limiter counts
--     every request, so the counts stay whatever the outcome.
-- KEYS: every key the writes touch (declared for Redis Cluster; all in offload's slot).
-- ARGV: the number of rate windows and the cost, then (key, expiry, amount) each; the number of
-- keys that must not exist, then each; the number of depth checks, then
-- (queue key, jobs to add, limit) each; the number of guards, then (key, field, value read, '' for none) each; then each write as its number of
-- arguments and the arguments (the command first).
-- Returns {outcome, counts} then the outcome's details: {'ok', counts}, {'limited', counts},
-- {'exists', counts, key, its value}, {'full', counts, queue key} or {'changed', counts, key};
-- counts is each window's count and TTL, in turn.
local counts = {}
local windows, cost = tonumber(ARGV[1]), tonumber(ARGV[2])
local i = 3
for _ = 1, windows do
  local count = redis.call('INCRBY', ARGV[i], cost)
  if count == cost then redis.call('EXPIRE', ARGV[i], ARGV[i + 1]) end
  counts[#counts + 1] = count
  counts[#counts + 1] = redis.call('TTL', ARGV[i])
  if count > tonumber(ARGV[i + 2]) then return {'limited', counts} end
  i = i + 3
end
local absent = tonumber(ARGV[i])
i = i + 1
for _ = 1, absent do
  local value = redis.call('GET', ARGV[i])
  if value then return {'exists', counts, ARGV[i], value} end
  i = i + 1
end
local checks = tonumber(ARGV[i])
i = i + 1
local depths = {}
for _ = 1, checks do
  depths[#depths + 1] = {ARGV[i], tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2])}
  i = i + 3
end
local guards = tonumber(ARGV[i])
i = i + 1
for _ = 1, guards do
  if (redis.call('HGET', ARGV[i], ARGV[i + 1]) or '') ~= ARGV[i + 2] then return {'changed', counts, ARGV[i]} end
  i = i + 3
end
for _, depth in ipairs(depths) do
  if redis.call('LLEN', depth[1]) + depth[2] > depth[3] then return {'full', counts, depth[1]} end
end
while i <= #ARGV do
  local argc = tonumber(ARGV[i])
  redis.call(unpack(ARGV, i + 1, i + argc))
  i = i + argc + 1
end
return {'ok', counts}
