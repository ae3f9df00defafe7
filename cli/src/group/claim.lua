-- Claims a file for one host, atomically: KEYS[1] its done mark, KEYS[2] its claim;
-- ARGV[1] the host, ARGV[2] the claim's expiry in ms.
-- Returns 'done' (a host finished it), 'mine' (claimed now, or already this host's) or
-- 'taken' (another host holds it).
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 'done'
end
local holder = redis.call('GET', KEYS[2])
if holder == ARGV[1] or redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then
  redis.call('PEXPIRE', KEYS[2], ARGV[2])
  return 'mine'
end
return 'taken'
