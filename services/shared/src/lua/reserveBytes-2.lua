--[[
  Takes bytes of the tenant's stored-bytes count only while the total stays within the quota, and
  in the same step adds a holder to the blob's references: the check and the take are one step,
  so simultaneous uploads cannot pass the quota together.

  Input:
    KEYS[1] the tenant's stored-bytes counter
    KEYS[2] the blob's set of references

    ARGV[1] the bytes to take
    ARGV[2] the quota, in bytes
    ARGV[3] the holder (a dataset id) to add to KEYS[2]

  Output:
    -1   taken
    used the bytes the tenant already stores, when the upload would pass the quota; nothing changed
]]
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
if used + tonumber(ARGV[1]) > tonumber(ARGV[2]) then return used end
redis.call('INCRBY', KEYS[1], ARGV[1])
redis.call('SADD', KEYS[2], ARGV[3])
return -1
