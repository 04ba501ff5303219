--[[
  Deletes a tenant's dataset unless an active job of the tenant uses it, and in the same step gives
  its bytes back to the tenant's quota and drops its reference on the blob.
  Job hash fields are JSON-encoded, so a job naming the dataset holds the id in quotes. A member of
  the active set without a record is a job being submitted by an API of an earlier version (which
  took the place before writing the record; lua/createJob-8.lua does both in one step): it may name
  the dataset, so it blocks too, until its place's deadline has passed (its submitter died before
  writing the record): then the place is given back here, as lua/createJob-8.lua does, rather than
  blocking the delete until the tenant's next submission.

  Input:
    KEYS[1] the dataset's record (JSON)
    KEYS[2] the index of datasets
    KEYS[3] the tenant's stored-bytes counter
    KEYS[4] the tenant's set of active jobs
    KEYS[5] the tenant's places not yet created (sorted set, score: deadline in ms)

    ARGV[1] the dataset id
    ARGV[2] the tenant
    ARGV[3] the job key prefix (a job's hash is ARGV[3] .. job id)
    ARGV[4] the blob-reference key prefix (a blob's set is ARGV[4] .. sha256)

  Output:
    {'missing'}                            no such dataset, or another tenant's
    {'busy', job id}                       an active job uses it; nothing changed
    {'deleted', sha256, references left}   deleted
]]
--- @include "includes/giveBackExpiredPlaces"

local raw = redis.call('GET', KEYS[1])
if not raw then return {'missing'} end
local rec = cjson.decode(raw)
if rec.tenant ~= ARGV[2] then return {'missing'} end
giveBackExpiredPlaces(KEYS[4], KEYS[5], ARGV[3])
local quoted = '"' .. ARGV[1] .. '"'
for _, job in ipairs(redis.call('SMEMBERS', KEYS[4])) do
  local f = redis.call('HMGET', ARGV[3] .. job, 'status', 'dataset', 'validation_dataset', 'test_dataset', 'unlabeled_dataset')
  if not f[1] or f[2] == quoted or f[3] == quoted or f[4] == quoted or f[5] == quoted then return {'busy', job} end
end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
local left = redis.call('DECRBY', KEYS[3], rec.size_bytes)
if left < 0 then redis.call('SET', KEYS[3], 0) end
local refs = ARGV[4] .. rec.sha256
redis.call('SREM', refs, ARGV[1])
return {'deleted', rec.sha256, redis.call('SCARD', refs)}
