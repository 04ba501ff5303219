--[[
  Places in a tenant's active set that an API of an earlier version took before it wrote the job's
  record (its reserveActiveJob script), each with a deadline by Redis's clock in `reserving`: past
  it, a place whose job has no record (its submitter died in between) is given back. At most 100 a
  call, so one call stays short.
]]
local function giveBackExpiredPlaces(active, reserving, jobPrefix)
  local t = redis.call('TIME')
  local now = t[1] * 1000 + math.floor(t[2] / 1000)
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', reserving, '-inf', now, 'LIMIT', 0, 100)) do
    if redis.call('EXISTS', jobPrefix .. id) == 0 then redis.call('SREM', active, id) end
    redis.call('ZREM', reserving, id)
  end
end
