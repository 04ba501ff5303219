--[[
  Joins the tenant's set of active jobs only while it holds fewer than the limit, and only while the
  datasets the job names are still there: the check and the join are one step, so simultaneous
  submissions cannot pass the limit together, and a dataset deleted after the submission first read
  it is caught here (its delete refuses once the job is in the set: lua/removeDataset-4.lua). The
  submission has already read each dataset and checked it is the tenant's; a record never changes
  tenant and ids are never reused, so here it is enough that it still exists. The dataset records
  are named in ARGV, as many as the job has (the job kinds differ in how many datasets they take).

  Input:
    KEYS[1] the tenant's set of active jobs

    ARGV[1] the job id
    ARGV[2] the limit
    ARGV[3..] the records of the job's datasets (none: only the limit is checked)

  Output:
    -1      joined (or already a member)
    n >= 0  the number of active jobs, when the set is full; nothing changed
    -2 - i  the dataset record in ARGV[3 + i] is gone; nothing changed
]]
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 0 then
  local n = redis.call('SCARD', KEYS[1])
  if n >= tonumber(ARGV[2]) then return n end
end
for i = 3, #ARGV do
  if redis.call('EXISTS', ARGV[i]) == 0 then return -2 - (i - 3) end
end
redis.call('SADD', KEYS[1], ARGV[1])
return -1
