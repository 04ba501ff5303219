--[[
  Joins the tenant's set of active jobs only while it holds fewer than the limit, and only while the
  datasets the job names are still there: the check and the join are one step, so simultaneous
  submissions cannot pass the limit together, and a dataset deleted after the submission first read
  it (or read it from memory) is caught here (its delete refuses once the job is in the set: lua/removeDataset-5.lua). The
  submission has already read each dataset and checked it is the tenant's; a record never changes
  tenant and ids are never reused, so here it is enough that it still exists. The dataset records
  are named in ARGV, as many as the job has (the job kinds differ in how many datasets they take).

  A place is taken before the job's record is written (JobStore.createIn, which clears its
  deadline): a submitter that dies in between would hold it for ever. So each place carries a
  deadline (Redis's clock), and a place past it whose job has no record is given back here first.
  A record written after its place was given back joins the set again (createIn adds it), so a late
  submission overshoots the limit by one for a while but loses nothing.

  Input:
    KEYS[1] the tenant's set of active jobs
    KEYS[2] the tenant's places not yet created (sorted set, score: deadline in ms)

    ARGV[1] the job id
    ARGV[2] the limit
    ARGV[3] the job key prefix (a job's hash is ARGV[3] .. job id)
    ARGV[4] how long a place waits for its record, in ms
    ARGV[5..] the records of the job's datasets (none: only the limit is checked)

  Output:
    -1      joined (or already a member)
    n >= 0  the number of active jobs, when the set is full; nothing changed but places given back
    -2 - i  the dataset record in ARGV[5 + i] is gone; nothing changed but places given back
]]
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, 100)) do
  if redis.call('EXISTS', ARGV[3] .. id) == 0 then redis.call('SREM', KEYS[1], id) end
  redis.call('ZREM', KEYS[2], id)
end
-- Datasets first: the submission may have read a record from its memory (DatasetStore.recordOf),
-- and a gone dataset is refused before a full quota, as when it was read from Redis.
for i = 5, #ARGV do
  if redis.call('EXISTS', ARGV[i]) == 0 then return -2 - (i - 5) end
end
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 0 then
  local n = redis.call('SCARD', KEYS[1])
  if n >= tonumber(ARGV[2]) then return n end
end
if redis.call('SADD', KEYS[1], ARGV[1]) == 1 then redis.call('ZADD', KEYS[2], now + tonumber(ARGV[4]), ARGV[1]) end
return -1
