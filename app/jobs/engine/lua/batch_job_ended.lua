-- A job of a batch has ended (sent with EVAL inside the job's outcome transaction).
-- KEYS: the batch's pending set, its hash, the set of batches whose callback is due.
-- ARGV: the job id, the time, seconds the batch's record is kept once it has ended, the batch id.
-- SREM answers 1 for one end of each job only (a second end of the same job changes nothing),
-- and only the SREM that empties the set goes on, if the record is still there (a batch may
-- have expired before a retried job of it ends). HSETNX then lets the batch end once, ever: a
-- job retried after its batch ended reopens it, but its callback is never sent twice.
if redis.call('SREM', KEYS[1], ARGV[1]) == 0 then return 0 end
if redis.call('SCARD', KEYS[1]) > 0 or redis.call('EXISTS', KEYS[2]) == 0 then return 0 end
redis.call('EXPIRE', KEYS[2], ARGV[3])
if redis.call('HSETNX', KEYS[2], 'ended_at', ARGV[2]) == 0 then return 0 end
if redis.call('HEXISTS', KEYS[2], 'callback_url') == 1 then redis.call('SADD', KEYS[3], ARGV[4]) end
return 1
