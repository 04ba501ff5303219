--[[
  Gives back what reserveBytes took: the bytes (never below 0) and the holder's reference.

  Input:
    KEYS[1] the tenant's stored-bytes counter
    KEYS[2] the blob's set of references

    ARGV[1] the bytes to give back
    ARGV[2] the holder (a dataset id) to remove from KEYS[2]

  Output:
    the number of references the blob has left
]]
local left = redis.call('DECRBY', KEYS[1], ARGV[1])
if left < 0 then redis.call('SET', KEYS[1], 0) end
redis.call('SREM', KEYS[2], ARGV[2])
return redis.call('SCARD', KEYS[2])
