--[[
  Creates a job's record: its hash, its place in the indexes, its first status event, and its place
  among the tenant's active jobs (a tune's trial: among the tune's trials instead, under the tune's
  one place). The one writer of a new record (JobStore.createIn), so the layout is kept in one place.

  With a limit, the record is written only while the tenant holds fewer active jobs than
  the limit and the job's datasets are still there, in the same step, so simultaneous submissions
  cannot pass the limit together and a dataset deleted after the submission read it (or read it from
  memory: DatasetStore.recordOf) is never trained on; its delete refuses once the job is in the set
  (lua/removeDataset-5.lua). Datasets are checked first: a gone dataset is refused before a full
  quota, as when the submission read it from Redis. The API sends this script and BullMQ's add in
  one MULTI (queues.ts addJobWith), so the check, the record and the queueing are one round trip.
  A refused job must not be queued by the add that follows: the refusal writes a placeholder hash
  at the job's key in the queue, and BullMQ adds nothing for an id that exists (it logs a
  'duplicated' event). The placeholder expires; job ids are never reused.

  Places taken by an API of an earlier version (its reserveActiveJob script took the place with a
  deadline before the record was written) that are past their deadline with no record are given
  back first, as lua/removeDataset-5.lua does.

  Input:
    KEYS[1] the job's hash
    KEYS[2] the index of all jobs
    KEYS[3] the tenant's index of jobs
    KEYS[4] the tenant's index of jobs of this kind
    KEYS[5] the job's event stream
    KEYS[6] where the job counts: the tenant's set of active jobs, or (a trial) the tune's trials
    KEYS[7] the tenant's places not yet created (sorted set, score: deadline in ms)
    KEYS[8] the job's key in its queue (written only on a refusal)

    ARGV[1] the job id
    ARGV[2] the trial's number (KEYS[6] is then the tune's trials), or '' (KEYS[6] is the active set)
    ARGV[3] the limit of active jobs, or '' for none (and no dataset is checked)
    ARGV[4] the job key prefix (a job's hash is ARGV[4] .. job id)
    ARGV[5] the event stream's approximate MAXLEN
    ARGV[6] the status event, JSON
    ARGV[7] n, the number of field/value arguments that follow
    ARGV[8 .. 7+n] the record's field, value pairs
    ARGV[8+n ..] the records of the job's datasets (checked only with a limit)

  Output:
    -1      created
    n >= 0  the number of active jobs, when the set is full; nothing written but the placeholder
    -2 - i  the i-th dataset record (from 0) is gone; nothing written but the placeholder
]]
--- @include "includes/giveBackExpiredPlaces"

local id = ARGV[1]
local n = tonumber(ARGV[7])
if ARGV[3] ~= '' then
  local refused
  giveBackExpiredPlaces(KEYS[6], KEYS[7], ARGV[4])
  for i = 8 + n, #ARGV do
    if redis.call('EXISTS', ARGV[i]) == 0 then refused = -2 - (i - 8 - n); break end
  end
  if not refused and redis.call('SISMEMBER', KEYS[6], id) == 0 then
    local active = redis.call('SCARD', KEYS[6])
    if active >= tonumber(ARGV[3]) then refused = active end
  end
  if refused then
    redis.call('HSET', KEYS[8], 'makam_refused', '1')
    redis.call('PEXPIRE', KEYS[8], 60000)
    return refused
  end
end
redis.call('HSET', KEYS[1], unpack(ARGV, 8, 7 + n))
redis.call('ZADD', KEYS[2], 0, id)
redis.call('ZADD', KEYS[3], 0, id)
redis.call('ZADD', KEYS[4], 0, id)
if ARGV[2] ~= '' then
  redis.call('ZADD', KEYS[6], tonumber(ARGV[2]), id)
else
  redis.call('SADD', KEYS[6], id)
  redis.call('ZREM', KEYS[7], id)
end
redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[5], '*', 'e', ARGV[6])
return -1
