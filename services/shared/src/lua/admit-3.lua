--[[
  The front door's Redis work for one request in one round trip (services/api/src/plugins/auth.ts),
  in the order the hook decides: the address's request count, then its failed authentications,
  then the API key's record, then the key's tenant's request count. Each count is a fixed window:
  INCR, and the window's expiry set by the INCR that made it 1 (as @fastify/rate-limit's store).
  A step that refuses ends the script, so a later count is not taken. While Redis refuses writes for
  want of a replica, the counts are read, not taken (hit, below).

  Input:
    KEYS[1] the address's request counter
    KEYS[2] the address's failed-authentication counter
    KEYS[3] the API key's record (apikey:<sha256>; any key when ARGV[4] is not 'key')

    ARGV[1] the window, ms
    ARGV[2] the most requests an address may send in a window
    ARGV[3] the most failed authentications an address may have in a window
    ARGV[4] how far to go: 'address' (the count only), 'failures' (and the failures check),
            'key' (and the key's record and its tenant's count), or 'fail' (count one failed
            authentication in KEYS[2], nothing else)
    ARGV[5] the prefix of a tenant's request counter: the counter is ARGV[5] .. tenant (the
            tenant is known only once the key's record is read, so the key cannot be passed in)
    ARGV[6] the most requests a tenant may send in a window
    ARGV[7] for 'key': a hash the route reads (HGETALL) once the request is admitted, in this same
            round trip (config.admitRead in services/api/src/plugins/auth.ts); '' for none. Named
            here rather than in KEYS, as the tenant's counter is: the routes differ in whether they read one

  Output:
    {'address', count, ttl ms}      the address is past its limit
    {'failures', count, ttl ms}     the address failed too often; its key was not looked at
    {'no_key'}                      no such key, or it was revoked
    {'tenant', count, ttl ms, raw}  the key's tenant is past its limit (raw: the key's record)
    {'ok', 0, 0, raw, fields}       admitted (raw only for 'key'; fields: ARGV[7]'s field/value
                                    pairs, empty when it does not exist, only when ARGV[7] is given)
    {'ok', count, ttl ms}           for 'fail': the failures counted now
]]
local window = tonumber(ARGV[1])

-- A primary with min-replicas-to-write and no replica in reach refuses the INCR (NOREPLICAS): the
-- request is then judged by the count as it stands, one more than stored, and not counted, so reads
-- go on answering while the replica is away (a write's own command is still refused: 503
-- no_replicas). Any other error is raised as it came.
local function hit(key)
  local n = redis.pcall('INCR', key)
  if type(n) == 'table' then
    if not string.find(tostring(n.err), '^NOREPLICAS') then error(n) end
    return tonumber(redis.call('GET', key) or '0') + 1
  end
  if n == 1 then redis.call('PEXPIRE', key, window) end
  return n
end

-- The window a count has left, read only for an answer that names it (a refusal's Retry-After):
-- an admitted request costs no PTTL.
local function left(key)
  local ms = redis.call('PTTL', key)
  return ms > 0 and ms or window
end

if ARGV[4] == 'fail' then
  local n = hit(KEYS[2])
  return {'ok', n, left(KEYS[2])}
end

local n = hit(KEYS[1])
if n > tonumber(ARGV[2]) then return {'address', n, left(KEYS[1])} end
if ARGV[4] == 'address' then return {'ok', 0, 0} end

local failures = tonumber(redis.call('GET', KEYS[2]) or '0')
if failures >= tonumber(ARGV[3]) then
  return {'failures', failures, left(KEYS[2])}
end
if ARGV[4] == 'failures' then return {'ok', 0, 0} end

local raw = redis.call('GET', KEYS[3])
if not raw then return {'no_key'} end
local record = cjson.decode(raw)
if record.revoked_at ~= nil and record.revoked_at ~= cjson.null then return {'no_key'} end
local t = hit(ARGV[5] .. record.tenant)
if t > tonumber(ARGV[6]) then return {'tenant', t, left(ARGV[5] .. record.tenant), raw} end
if ARGV[7] and ARGV[7] ~= '' then return {'ok', 0, 0, raw, redis.call('HGETALL', ARGV[7])} end
return {'ok', 0, 0, raw}
