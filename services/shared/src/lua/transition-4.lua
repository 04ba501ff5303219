--[[
  Moves a job to a new status, but only from one of the statuses the status machine allows, and
  sets fields, logs the status event and, for a terminal status, announces the job's end, all in
  the same step: a process that dies after the move cannot leave a finished job unannounced (no
  webhook) or without its status event. A job that ends leaves its tenant's set of active jobs and
  is timed for retention (by Redis's clock, so every process agrees).

  Input:
    KEYS[1] the job's hash
    KEYS[2] the sorted set of ended jobs (score: when it ended, in ms)
    KEYS[3] the job's event stream
    KEYS[4] the stream announcing jobs' ends (webhook deliveries are made from it)

    ARGV[1] the statuses the job may come from, comma-separated
    ARGV[2] the status to move to
    ARGV[3] '1' when that status is terminal, else '0'
    ARGV[4] the prefix of a tenant's active-jobs set (the key is ARGV[4] .. tenant .. ':active')
    ARGV[5] the job id
    ARGV[6] the status event, JSON
    ARGV[7] the event stream's approximate MAXLEN
    ARGV[8] the end stream's approximate MAXLEN
    ARGV[9..] field, value pairs to set on the job's hash

  Output:
    {1, previous status} moved
    {0, current status}  not allowed from the current status
    {0, ''}              no such job
]]
local cur = redis.call('HGET', KEYS[1], 'status')
if not cur then return {0, ''} end
for s in string.gmatch(ARGV[1], '[^,]+') do
  if s == cur then
    redis.call('HSET', KEYS[1], 'status', ARGV[2], unpack(ARGV, 9))
    redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[7], '*', 'e', ARGV[6])
    if ARGV[3] == '1' then
      local tenant = redis.call('HGET', KEYS[1], 'tenant') or ''
      redis.call('SREM', ARGV[4] .. tenant .. ':active', ARGV[5])
      local t = redis.call('TIME')
      redis.call('ZADD', KEYS[2], t[1] * 1000 + math.floor(t[2] / 1000), ARGV[5])
      redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[8], '*', 'job', ARGV[5], 'status', ARGV[2])
    end
    return {1, cur}
  end
end
return {0, cur}
