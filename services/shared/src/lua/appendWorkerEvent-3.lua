--[[
  Appends a worker event unless its sequence number was already stored (a re-attached watcher
  resends from the cursor it knew), so the log has no duplicates; the event, its metric point and
  the record fields it updates are stored in one step.

  Input:
    KEYS[1] the job's hash (holds 'worker_seq', the last sequence number stored)
    KEYS[2] the job's event stream
    KEYS[3] the job's metrics stream

    ARGV[1] the event's sequence number
    ARGV[2] the event, JSON
    ARGV[3] the metric point, JSON, or '' when the event is not a metrics event
    ARGV[4] unused (kept '' so the arguments keep their places)
    ARGV[5] the event stream's approximate MAXLEN
    ARGV[6] the metrics stream's approximate MAXLEN
    ARGV[7..] field, value pairs to set on the job's hash

  Output:
    1 stored
    0 a duplicate (sequence number not above the stored one); nothing changed
]]
local last = tonumber(redis.call('HGET', KEYS[1], 'worker_seq') or '0')
if tonumber(ARGV[1]) <= last then return 0 end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[5], '*', 'e', ARGV[2])
if ARGV[3] ~= '' then redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[6], '*', 'm', ARGV[3]) end
redis.call('HSET', KEYS[1], 'worker_seq', ARGV[1], unpack(ARGV, 7))
return 1
