-- One host renews its share of one limiter's rate, on Redis's own clock (TIME).
--
-- KEYS[1] members: a hash, host -> "recorded demand expires_ms"
-- KEYS[2] identity: the limiter's group-wide config; a host that disagrees is refused
-- KEYS[3] contact: a hash with "last" (the latest renewal, ms) and "since" (when the group
--         last (re)formed: after a gap of more than a lease, or with its state lost)
-- KEYS[4] pause: a pause every host honours, with its own expiry
-- ARGV: host, identity, total (tokens/h), applied (tokens/h the host may be running at),
--       demand (tokens/h), lease_ms, leaving (1 = leave the group now), and optionally:
--       [8] the time in ms to use instead of TIME (the group's simulation runs on a virtual
--       clock; '' for TIME), [9] max_hosts (a host beyond it is not admitted), [10] the
--       longest pause in ms a host could publish (a longer one is cut to it)
--
-- Returns {grant (tokens/h, as text), pause_ms (remaining, 0 if none), flags}: flags 1 =
-- settling, 2 = keys or records no host could have written were discarded, 4 = a pause was
-- cut to the longest, 8 = the group is full (max_hosts live hosts, this one not among them:
-- it is not recorded, and runs at its fallback share).
--
-- Any client of this Redis can write these keys: what they hold is checked, not trusted. A
-- key of the wrong type, or a record that is not three numbers in range (rate and demand in
-- [0, total], an expiry at most a lease and a half away), is discarded; a `since` in the
-- future is reset; a pause is cut to the longest a host could publish.
--
-- The rule: the recorded rates of live hosts never sum above `total`. A host's record is
-- raised before the host may raise its rate (the grant is recorded here) and lowered only
-- when the host reports that it runs lower. Records expire a lease and a half after their
-- renewal, later than the host's own lease on its own clock, which starts when it sent the
-- request: after an outage shorter than a lease (no settling, below), a host whose lease
-- ended in it runs at its fallback share until it reports, unrecorded but for its record.
-- Every host renews each quarter lease, so its last renewal before an outage is at most a
-- quarter lease (and a renewal's time) before the group's; the half lease covers that. For
-- one lease after the group (re)forms no host may raise: hosts that still run on grants from
-- before (Redis restarted empty, or came back after an outage) report first.

local t = redis.call('TIME')
local now = tonumber(ARGV[8]) or (tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))
local host, identity = ARGV[1], ARGV[2]
local total, applied, demand = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local lease, leaving = tonumber(ARGV[6]), ARGV[7] == '1'
local max_hosts, longest_pause = tonumber(ARGV[9]), tonumber(ARGV[10])
local keep = lease * 3
local flags = 0

-- A number in [lo, hi], or nil (NaN, inf and text are not).
local function within(text, lo, hi)
  local x = tonumber(text)
  if x and x == x and x >= lo and x <= hi then return x end
  return nil
end

-- Keys of the wrong type are dropped (a plain GET or HGETALL on them would fail every
-- renewal of every host for ever).
for i, kind in ipairs({'hash', 'string', 'hash', 'string'}) do
  local found = redis.call('TYPE', KEYS[i]).ok
  if found ~= 'none' and found ~= kind then
    redis.call('DEL', KEYS[i])
    flags = 2
  end
end

local known = redis.call('GET', KEYS[2])
if not known then
  redis.call('SET', KEYS[2], identity, 'PX', keep)
elseif known ~= identity then
  return redis.error_reply('PACERCONFIG ' .. known)
else
  redis.call('PEXPIRE', KEYS[2], keep)
end

local contact = redis.call('HMGET', KEYS[3], 'last', 'since')
local last, since = within(contact[1], 0, now), within(contact[2], 0, now)
if (not last) or (not since) or since > last or now - last > lease then
  since = now
end
redis.call('HSET', KEYS[3], 'last', now, 'since', since)
redis.call('PEXPIRE', KEYS[3], keep)
local settling = now < since + lease

-- Live hosts other than this one; expired records, and records no host could have written,
-- are dropped.
local others, entries, member = 0, {}, false
local latest = now + lease + math.floor(lease / 2)
local members = redis.call('HGETALL', KEYS[1])
for i = 1, #members, 2 do
  local h, record = members[i], members[i + 1]
  local r, d, e = string.match(record, '^(%S+) (%S+) (%S+)$')
  r, d, e = within(r, 0, total), within(d, 0, total), within(e, -math.huge, latest)
  if h == host then
    member = true
  elseif not (r and d and e) then
    redis.call('HDEL', KEYS[1], h)
    flags = 2
  elseif e < now then
    redis.call('HDEL', KEYS[1], h)
  else
    others = others + r
    entries[#entries + 1] = d
  end
end

local pause_ms = redis.call('PTTL', KEYS[4])
if pause_ms < 0 then pause_ms = 0 end
if longest_pause and pause_ms > longest_pause then
  redis.call('PEXPIRE', KEYS[4], longest_pause)
  pause_ms = longest_pause
  flags = flags + 4
end
if settling then flags = flags + 1 end

if leaving then
  redis.call('HDEL', KEYS[1], host)
  return {'0', pause_ms, flags}
end

if max_hosts and not member and #entries >= max_hosts then
  return {'0', pause_ms, flags + 8}
end

-- Max-min fair shares by demand (water-filling): the smallest demands are met in full, the
-- rest split what is left evenly.
entries[#entries + 1] = demand
table.sort(entries)
local left, target = total, 0
for i, d in ipairs(entries) do
  local share = math.min(d, left / (#entries - i + 1))
  left = left - share
  if d == demand then target = share end
end
-- Equal demands share equally: this host's target is its water level.
target = math.min(demand, math.max(target, 0))

local grant = math.min(target, total - others)
if settling then grant = math.min(grant, applied) end
if grant < 0 then grant = 0 end
local recorded = math.max(grant, applied)
redis.call('HSET', KEYS[1], host,
  string.format('%.17g %.17g %d', recorded, demand, now + lease + math.floor(lease / 2)))
redis.call('PEXPIRE', KEYS[1], keep)
return {string.format('%.17g', grant), pause_ms, flags}
