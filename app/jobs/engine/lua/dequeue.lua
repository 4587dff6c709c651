-- The one dequeue of both workers (the fast worker's and RQ's forking one, through
-- app/jobs/engine/queue.py's Dequeue). KEYS: the suspension flag, the set of paused queue names, then each queue followed by its
-- intermediate list, in the order the worker serves them. ARGV[1]: the job key prefix, then
-- the queues' names in the same order (a paused queue is skipped: its jobs wait on it).
-- Returns false (queues empty), {"suspended"}, {"again"} (too many vanished jobs in a row),
-- or {queue_key, job_id, [the job's hash as a flat list]}. The job moves (LMOVE) onto its
-- queue's intermediate list, where it stays until the start transaction registers it as
-- started and takes it off: a worker killed in between strands it there, and maintenance
-- puts it back, instead of losing it as a plain LPOP/BLPOP would.
if redis.call('EXISTS', KEYS[1]) == 1 then return {'suspended'} end
for _ = 1, 100 do
  local moved = false
  for i = 3, #KEYS, 2 do
    local id = false
    if redis.call('SISMEMBER', KEYS[2], ARGV[(i - 1) / 2 + 1]) == 0 then
      id = redis.call('LMOVE', KEYS[i], KEYS[i + 1], 'LEFT', 'RIGHT')
    end
    if id then
      moved = true
      local fields = redis.call('HGETALL', ARGV[1] .. id)
      if #fields > 0 then return {KEYS[i], id, fields} end
      redis.call('LREM', KEYS[i + 1], 1, id)  -- the job expired while queued: skip it, as RQ does
      break
    end
  end
  if not moved then return false end
end
return {'again'}
