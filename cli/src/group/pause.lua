-- Publishes a pause of one limiter to every host: KEYS[1] the pause key, ARGV[1] its length
-- in ms. A longer pause already published stays. Returns the pause in force, in ms.
local ms = tonumber(ARGV[1])
local left = redis.call('PTTL', KEYS[1])
if left < ms then
  redis.call('SET', KEYS[1], '1', 'PX', ms)
  return ms
end
return left
