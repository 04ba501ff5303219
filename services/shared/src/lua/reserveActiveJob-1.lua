--[[
  Joins the tenant's set of active jobs only while it holds fewer than the limit: the check and the
  join are one step, so simultaneous submissions cannot pass the limit together.

  Input:
    KEYS[1] the tenant's set of active jobs

    ARGV[1] the job id
    ARGV[2] the limit

  Output:
    -1 joined (or already a member)
    n  the number of active jobs, when the set is full; nothing changed
]]
local n = redis.call('SCARD', KEYS[1])
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 1 then return -1 end
if n >= tonumber(ARGV[2]) then return n end
redis.call('SADD', KEYS[1], ARGV[1])
return -1
