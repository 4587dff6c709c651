-- Cancel queued jobs, each only if this script takes it off its queue itself (a worker's dequeue
-- that got there first makes that impossible, so a job is never both run and canceled).
-- KEYS: per job, its hash, its queue list, its queue's canceled registry, and the waiting set of
-- its rate limit (its hash again when it has none). ARGV: the canceled registry's score (now, as
-- RQ's Job.cancel adds it), the job-events channel, then the job ids. A job waiting for a
-- concurrency slot (rate_limited) is taken off the waiting set instead of its queue. Each
-- canceled id is published (waiters re-read the job) from here: a cluster client refuses PUBLISH
-- in a pipeline. Returns the ids canceled.
local done = {}
for i = 1, #KEYS, 4 do
  local id = ARGV[(i - 1) / 4 + 3]
  local status = redis.call('HGET', KEYS[i], 'status')
  local taken = 0
  if status == 'queued' then
    taken = redis.call('LREM', KEYS[i + 1], 1, id)
  elseif status == 'rate_limited' then
    taken = redis.call('ZREM', KEYS[i + 3], id)
  end
  if taken == 1 then
    redis.call('HSET', KEYS[i], 'status', 'canceled')
    redis.call('ZADD', KEYS[i + 2], ARGV[1], id)
    redis.call('PUBLISH', ARGV[2], id)
    done[#done + 1] = id
  end
end
return done
