--[[
  Frees an Idempotency-Key's claim, if the key still holds that claim: a release that waited for a
  replica past the claim's expiry must not free a later request's claim, nor its stored answer.

  Input:
    KEYS[1] the key's entry
    ARGV[1] the claim, as the claim wrote it

  Output:
    1 freed, 0 not (gone, or another's)
]]
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
