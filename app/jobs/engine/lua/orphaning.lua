-- A job ended without finishing: note it if jobs wait on it (their failure is then settled by
-- app/jobs/submitting/dependencies.py). KEYS: the job's dependents set (RQ's), the set of jobs
-- whose dependents are to be failed. ARGV: the job id. Only a job that has dependents is noted.
if redis.call('EXISTS', KEYS[1]) == 1 then return redis.call('SADD', KEYS[2], ARGV[1]) end
return 0
