-- The one dequeue of both workers (the fast worker's and RQ's forking one, through
-- app/jobs/engine/queue.py's Dequeue). KEYS: the suspension flag, the set of paused queue names, then each queue followed by its
-- intermediate list, in the order the worker serves them. ARGV[1]: the job key prefix, then
-- the queues' names in the same order (a paused queue is skipped: its jobs wait on it).
-- Returns false (queues empty), {"suspended"}, {"again"} (too many vanished jobs in a row),
-- or {queue_key, job_id, [the job's hash as a flat list], start}. The job moves (LMOVE) onto
-- its queue's intermediate list, where it stays until the start transaction registers it as
-- started and takes it off: a worker killed in between strands it there, and maintenance
-- puts it back, instead of losing it as a plain LPOP/BLPOP would.
--
-- Optionally, after the names, the start itself (the fast worker: claim and start in one
-- round trip): three placeholders (the job's id, its queue's name, its type), then the start
-- transaction's commands, recorded by the worker for a job whose id, queue and type are the
-- placeholders, each as its number of words followed by the words; the number is negative for
-- a command some of whose words hold a placeholder. They run here for the job just taken,
-- placeholders filled (a command without any runs straight from ARGV), and `start` is the
-- reply of the last one. Without them, `start` is absent and the worker records the start itself.
if redis.call('EXISTS', KEYS[1]) == 1 then return {'suspended'} end
local queues = (#KEYS - 2) / 2

local function literal(text)  -- a text used as a gsub pattern or replacement, taken as is
  return (string.gsub(text, '[%%%-%^%$%(%)%.%[%]%*%+%?]', '%%%0'))
end

local function start(queue_name, id, fields)
  local at = queues + 2
  if #ARGV < at + 2 then return nil end
  local job_type = 'unknown'
  for f = 1, #fields, 2 do
    if fields[f] == 'meta' then
      local ok, meta = pcall(cjson.decode, fields[f + 1])
      if ok and type(meta) == 'table' and type(meta['type']) == 'string' then job_type = meta['type'] end
    end
  end
  local marks = {  -- the placeholder, as a pattern, and as a plain text; what replaces it
    {literal(ARGV[at]), ARGV[at], string.gsub(id, '%%', '%%%%')},
    {literal(ARGV[at + 1]), ARGV[at + 1], string.gsub(queue_name, '%%', '%%%%')},
    {literal(ARGV[at + 2]), ARGV[at + 2], string.gsub(job_type, '%%', '%%%%')},
  }
  local find, gsub = string.find, string.gsub
  local i, reply = at + 3, false
  while i <= #ARGV do
    local words = tonumber(ARGV[i])
    if words > 0 then
      reply = redis.call(unpack(ARGV, i + 1, i + words))
    else
      words = -words
      local command = {}
      for w = 1, words do
        local word = ARGV[i + w]
        for m = 1, 3 do
          local mark = marks[m]
          if find(word, mark[2], 1, true) then word = gsub(word, mark[1], mark[3]) end
        end
        command[w] = word
      end
      reply = redis.call(unpack(command))
    end
    i = i + words + 1
  end
  return reply
end

for _ = 1, 100 do
  local moved = false
  for i = 3, #KEYS, 2 do
    local id = false
    local name = ARGV[(i - 1) / 2 + 1]
    if redis.call('SISMEMBER', KEYS[2], name) == 0 then
      id = redis.call('LMOVE', KEYS[i], KEYS[i + 1], 'LEFT', 'RIGHT')
    end
    if id then
      moved = true
      local fields = redis.call('HGETALL', ARGV[1] .. id)
      if #fields > 0 then
        local started = start(name, id, fields)
        if started == nil then return {KEYS[i], id, fields} end
        return {KEYS[i], id, fields, started}
      end
      redis.call('LREM', KEYS[i + 1], 1, id)  -- the job expired while queued: skip it, as RQ does
      break
    end
  end
  if not moved then return false end
end
return {'again'}
