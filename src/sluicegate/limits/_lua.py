"""The Lua scripts of the Redis limiter: one per admit, one per settle/release, one per seed.

Redis runs a script atomically, so the check of every scope and the reservation in all of them
happen as one step no matter how many gateway processes call at once. Time is Redis's own clock
(`TIME`), so processes on machines with skewed clocks still share one window. Money is integer
nano-dollars (HINCRBY adds int64 exactly); integers leave Lua through `int()` because Lua's
default number-to-string conversion switches to exponent notation above 1e14.

Keys of one scope (all under the limiter's prefix, which carries one `{hash tag}` so a script's
keys always live in one Redis Cluster slot):
    rq  ZSET  requests in the window: admission id -> time (ms)
    tk  ZSET  token entries in the window: admission id -> time (ms)
    tv  HASH  admission id -> tokens, and '#' -> their sum        (tk and tv expire together)
    pl  ZSET  calls in flight: admission id -> reservation expiry (ms)
    br  ZSET  budget reservations of one period: admission id -> expiry (ms)
    bg  HASH  one period's budget: 'spent', 'res' (sum of reservations), 'r:<id>' -> reservation,
              'alerted' once the soft budget was crossed                 (br and bg expire together)
"""

from __future__ import annotations

_PRELUDE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local WINDOW = 60000
local cutoff = now - WINDOW
local CHUNK = 500

local function int(x) return string.format('%d', x) end
local function num(x) return (x and tonumber(x)) or 0 end

-- Drop token entries that left the window, subtracting them from the running sum.
local function evict_tokens(zkey, hkey)
  while true do
    local old = redis.call('ZRANGEBYSCORE', zkey, '-inf', cutoff, 'LIMIT', 0, CHUNK)
    if #old == 0 then return end
    local vals = redis.call('HMGET', hkey, unpack(old))
    local sum = 0
    for j = 1, #vals do sum = sum + num(vals[j]) end
    redis.call('HDEL', hkey, unpack(old))
    redis.call('HINCRBY', hkey, '#', int(-sum))
    redis.call('ZREM', zkey, unpack(old))
    if #old < CHUNK then return end
  end
end

-- Drop budget reservations whose calls never settled (crashed process), returning their money.
local function evict_reservations(zkey, hkey)
  while true do
    local old = redis.call('ZRANGEBYSCORE', zkey, '-inf', now, 'LIMIT', 0, CHUNK)
    if #old == 0 then return end
    local fields = {}
    for j = 1, #old do fields[j] = 'r:' .. old[j] end
    local vals = redis.call('HMGET', hkey, unpack(fields))
    local sum = 0
    for j = 1, #vals do sum = sum + num(vals[j]) end
    redis.call('HDEL', hkey, unpack(fields))
    redis.call('HINCRBY', hkey, 'res', int(-sum))
    redis.call('ZREM', zkey, unpack(old))
    if #old < CHUNK then return end
  end
end
"""

# KEYS: 6 per scope (rq, tk, tv, pl, br, bg).
# ARGV: id, est_tokens, est_nanos, ttl_ms, n, then 5 per scope: rpm, tpm, max_parallel, budget_nanos,
#       budget expire-at (unix s, 0 = lifetime); -1 = no limit.
# Returns {0, rpm, requests left, tpm, tokens left} when admitted (the tightest scope of each kind,
# after the reservation; -1 where no scope sets the limit), or {code, index, wait_ms, spent,
# reserved, rpm, requests left, tpm, tokens left} when refused. Replies stay this short whatever
# the number of scopes: parsing a reply is a large share of a client's cost per call.
ADMIT = (
    _PRELUDE
    + """
local aid = ARGV[1]
local est_tok = tonumber(ARGV[2])
local est_cost = tonumber(ARGV[3])
local ttl = tonumber(ARGV[4])
local n = tonumber(ARGV[5])
local SCAN = 256

local refusal = nil
local function consider(r)
  if refusal == nil then refusal = r return end
  if math.max(refusal[1], r[1]) >= 4 then
    if r[1] > refusal[1] then refusal = r end
  elseif r[3] > refusal[3] then refusal = r end
end

-- Per scope: requests and tokens left before this call (-1 where the scope sets no limit).
local left = {}

-- The tightest scope of each kind: {limit, left} with the least left (the first one on ties).
local function tightest(admitted)
  local best_r, best_t = {-1, -1}, {-1, -1}
  for i = 1, n do
    local a = 5 + (i - 1) * 5
    local rpm, tpm = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
    local lr, lt = left[2 * i - 1], left[2 * i]
    if admitted then
      if rpm >= 0 then lr = lr - 1 end
      if tpm >= 0 then lt = lt - est_tok end
    end
    if rpm >= 0 and (best_r[1] < 0 or lr < best_r[2]) then best_r = {rpm, lr} end
    if tpm >= 0 and (best_t[1] < 0 or lt < best_t[2]) then best_t = {tpm, lt} end
  end
  return {best_r[1], best_r[2], best_t[1], best_t[2]}
end

for i = 1, n do
  local k = (i - 1) * 6
  local a = 5 + (i - 1) * 5
  local rpm, tpm = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
  local maxp, budget = tonumber(ARGV[a + 3]), tonumber(ARGV[a + 4])
  local left_r, left_t = -1, -1
  if rpm >= 0 then
    redis.call('ZREMRANGEBYSCORE', KEYS[k + 1], '-inf', cutoff)
    local count = redis.call('ZCARD', KEYS[k + 1])
    left_r = rpm - count
    if count + 1 > rpm then
      local wait = WINDOW
      local e = redis.call('ZRANGE', KEYS[k + 1], count - rpm, count - rpm, 'WITHSCORES')
      if e[2] then wait = tonumber(e[2]) + WINDOW - now end
      consider({1, i, wait, 0, 0})
    end
  end
  if tpm >= 0 then
    evict_tokens(KEYS[k + 2], KEYS[k + 3])
    local used = num(redis.call('HGET', KEYS[k + 3], '#'))
    left_t = tpm - used
    if est_tok > tpm then
      consider({4, i, 0, 0, 0})
    elseif used + est_tok > tpm then
      local need = used + est_tok - tpm
      local wait = WINDOW
      local ents = redis.call('ZRANGE', KEYS[k + 2], 0, SCAN - 1, 'WITHSCORES')
      if #ents > 0 then
        local members = {}
        for j = 1, #ents, 2 do members[#members + 1] = ents[j] end
        local vals = redis.call('HMGET', KEYS[k + 3], unpack(members))
        local freed = 0
        for j = 1, #members do
          freed = freed + num(vals[j])
          if freed >= need then
            wait = tonumber(ents[2 * j]) + WINDOW - now
            break
          end
        end
      end
      consider({2, i, wait, 0, 0})
    end
  end
  if maxp >= 0 then
    redis.call('ZREMRANGEBYSCORE', KEYS[k + 4], '-inf', now)
    if redis.call('ZCARD', KEYS[k + 4]) >= maxp then consider({3, i, 1000, 0, 0}) end
  end
  if budget >= 0 then
    evict_reservations(KEYS[k + 5], KEYS[k + 6])
    local h = redis.call('HMGET', KEYS[k + 6], 'spent', 'res')
    local committed = num(h[1]) + num(h[2])
    if committed >= budget or committed + est_cost > budget then
      consider({5, i, 0, num(h[1]), num(h[2])})
    end
  end
  left[2 * i - 1] = left_r
  left[2 * i] = left_t
end

if refusal ~= nil then
  local t4 = tightest(false)
  return {refusal[1], refusal[2], refusal[3], refusal[4], refusal[5], t4[1], t4[2], t4[3], t4[4]}
end

local expiry = now + ttl
for i = 1, n do
  local k = (i - 1) * 6
  local a = 5 + (i - 1) * 5
  local rpm, tpm = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
  local maxp, budget = tonumber(ARGV[a + 3]), tonumber(ARGV[a + 4])
  if rpm >= 0 then
    redis.call('ZADD', KEYS[k + 1], now, aid)
    redis.call('PEXPIRE', KEYS[k + 1], WINDOW + 1000)
  end
  if tpm >= 0 then
    redis.call('ZADD', KEYS[k + 2], now, aid)
    redis.call('HSET', KEYS[k + 3], aid, ARGV[2])
    redis.call('HINCRBY', KEYS[k + 3], '#', ARGV[2])
    redis.call('PEXPIRE', KEYS[k + 2], WINDOW + 1000)
    redis.call('PEXPIRE', KEYS[k + 3], WINDOW + 1000)
  end
  if maxp >= 0 then
    redis.call('ZADD', KEYS[k + 4], expiry, aid)
    if redis.call('PTTL', KEYS[k + 4]) < ttl + 1000 then redis.call('PEXPIRE', KEYS[k + 4], ttl + 1000) end
  end
  if budget >= 0 then
    redis.call('ZADD', KEYS[k + 5], expiry, aid)
    redis.call('HSET', KEYS[k + 6], 'r:' .. aid, ARGV[3])
    redis.call('HINCRBY', KEYS[k + 6], 'res', ARGV[3])
    local at = tonumber(ARGV[a + 5])
    if at > 0 then
      redis.call('EXPIREAT', KEYS[k + 5], at)
      redis.call('EXPIREAT', KEYS[k + 6], at)
    end
  end
end
local t4 = tightest(true)
return {0, t4[1], t4[2], t4[3], t4[4]}
"""
)

# KEYS: 7 per scope (rq, tk, tv, pl, br and bg of the admission's period, bg of the current period).
# ARGV: id, tokens, cost_nanos, release (0/1), reserved tokens, n, then 3 per scope: flags
#       (1 rpm, 2 tpm, 4 max_parallel, 8 budget reserved, 16 tracks spend), soft_nanos (-1 = none),
#       current period expire-at (unix s, 0 = lifetime).
# Returns {index, spent, ...} for each scope whose soft budget this call crossed first (usually {}).
SETTLE = (
    _PRELUDE
    + """
local aid = ARGV[1]
local tokens = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local release = ARGV[4] == '1'
local est = tonumber(ARGV[5])
local n = tonumber(ARGV[6])
local out = {}
for i = 1, n do
  local k = (i - 1) * 7
  local a = 6 + (i - 1) * 3
  local flags, soft, at = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3])
  if release and bit.band(flags, 1) ~= 0 then redis.call('ZREM', KEYS[k + 1], aid) end
  if bit.band(flags, 2) ~= 0 then
    evict_tokens(KEYS[k + 2], KEYS[k + 3])  -- so "still in the window" means admitted < 60 s ago
    local v = redis.call('HGET', KEYS[k + 3], aid)
    if v then
      if release then
        redis.call('HDEL', KEYS[k + 3], aid)
        redis.call('ZREM', KEYS[k + 2], aid)
        redis.call('HINCRBY', KEYS[k + 3], '#', int(-tonumber(v)))
      else
        redis.call('HSET', KEYS[k + 3], aid, ARGV[2])
        redis.call('HINCRBY', KEYS[k + 3], '#', int(tokens - tonumber(v)))
        redis.call('PEXPIRE', KEYS[k + 2], WINDOW + 1000)
        redis.call('PEXPIRE', KEYS[k + 3], WINDOW + 1000)
      end
    elseif not release and tokens > est then
      -- The call outlived the window; tokens beyond its reservation count from now.
      local m = aid .. '+'
      redis.call('ZADD', KEYS[k + 2], now, m)
      redis.call('HSET', KEYS[k + 3], m, int(tokens - est))
      redis.call('HINCRBY', KEYS[k + 3], '#', int(tokens - est))
      redis.call('PEXPIRE', KEYS[k + 2], WINDOW + 1000)
      redis.call('PEXPIRE', KEYS[k + 3], WINDOW + 1000)
    end
  end
  if bit.band(flags, 4) ~= 0 then redis.call('ZREM', KEYS[k + 4], aid) end
  if bit.band(flags, 8) ~= 0 and redis.call('ZREM', KEYS[k + 5], aid) == 1 then
    local f = 'r:' .. aid
    local v = redis.call('HGET', KEYS[k + 6], f)
    redis.call('HDEL', KEYS[k + 6], f)
    if v then redis.call('HINCRBY', KEYS[k + 6], 'res', int(-tonumber(v))) end
  end
  if not release and cost > 0 and bit.band(flags, 16) ~= 0 then
    local spent = redis.call('HINCRBY', KEYS[k + 7], 'spent', ARGV[3])
    if at > 0 then redis.call('EXPIREAT', KEYS[k + 7], at) end
    if soft >= 0 and spent >= soft and redis.call('HSETNX', KEYS[k + 7], 'alerted', 1) == 1 then
      out[#out + 1] = i
      out[#out + 1] = spent
    end
  end
end
return out
"""
)

# KEYS: bg of the period being seeded. ARGV: spent_nanos, soft_nanos (-1 = none), expire-at (0 = never).
# Keeps the larger of the live counter and the ledger's figure, so re-seeding is always safe.
SEED = """
local cur = tonumber(redis.call('HGET', KEYS[1], 'spent') or '0')
local v = tonumber(ARGV[1])
if v > cur then redis.call('HSET', KEYS[1], 'spent', ARGV[1]) else v = cur end
local soft = tonumber(ARGV[2])
if soft >= 0 and v >= soft then redis.call('HSETNX', KEYS[1], 'alerted', 1) end
if tonumber(ARGV[3]) > 0 then redis.call('EXPIREAT', KEYS[1], ARGV[3]) end
return 1
"""

# KEYS: rq, tk, tv, pl, br, bg of one scope. Returns {requests, tokens, in flight, spent, reserved}.
USAGE = (
    _PRELUDE
    + """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', cutoff)
evict_tokens(KEYS[2], KEYS[3])
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now)
evict_reservations(KEYS[5], KEYS[6])
local h = redis.call('HMGET', KEYS[6], 'spent', 'res')
return {redis.call('ZCARD', KEYS[1]), num(redis.call('HGET', KEYS[3], '#')), redis.call('ZCARD', KEYS[4]),
        num(h[1]), num(h[2])}
"""
)
