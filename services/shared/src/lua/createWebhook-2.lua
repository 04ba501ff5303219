--[[
  Counts the tenant's webhooks and adds one in the same step, so simultaneous creations cannot pass
  the cap together.

  Input:
    KEYS[1] the tenant's set of webhook ids
    KEYS[2] the webhook's hash

    ARGV[1] the cap
    ARGV[2] the webhook id
    ARGV[3] the record, JSON
    ARGV[4] the signing secret

  Output:
    1 created
    0 the tenant already has the cap; nothing changed
]]
if redis.call('SCARD', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[2], 'record', ARGV[3], 'secret', ARGV[4])
redis.call('SADD', KEYS[1], ARGV[2])
return 1
