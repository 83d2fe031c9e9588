"""The two Lua scripts of the Redis limiter: one decision, one correction.

They are `hxgw.keys.window.KeyState.reserve` and `.reconcile` written for Redis,
step for step, so that the three backends decide alike (the tests run the same
cases against each). A script runs atomically on the server: N gateways deciding
for one key at once are served one after the other, and enforce one limit.

One key's state is four Redis keys with its name as the hash tag (one slot in a
cluster): `log` (sorted set, request id -> time), `tok` (hash, request id ->
tokens), `open` (sorted set, request id -> lease expiry) and `st` (hash: budget
period `p` and its length `ps`, spend `s`, reserved cost `r`, window tokens `t`,
and `c:<id>` the estimated cost of each open reservation). Every decision sets
all four to expire a window after the longest of window, lease and budget
period: an idle key's state goes away on its own, and its four keys together.

Numbers go to Redis as "%.17g" strings: Redis would write a Lua number with 14
digits, which is a tenth of a millisecond at today's epoch.
"""

from __future__ import annotations

_COMMON = """
local log, tok, open, st = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local function num(v) return tonumber(v) or 0 end
local function fmt(x) return string.format('%.17g', x) end
"""

RESERVE = (
    _COMMON
    + """
-- ARGV: now, id, est_tokens, est_cost, rpm, tpm, max_parallel, budget (-1: none),
--       period_s, lease_s, ttl, window, concurrency_retry
local now, id = tonumber(ARGV[1]), ARGV[2]
local est_tokens, est_cost = tonumber(ARGV[3]), tonumber(ARGV[4])
local rpm, tpm, max_parallel = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local budget, period_s, lease_s = tonumber(ARGV[8]), tonumber(ARGV[9]), tonumber(ARGV[10])
local ttl, window, concurrency_retry = tonumber(ARGV[11]), tonumber(ARGV[12]), tonumber(ARGV[13])

local stored = redis.call('HMGET', st, 'p', 'ps', 's', 'r', 't')
local period = math.floor(now / period_s)
local spent, reserved, tokens = num(stored[3]), num(stored[4]), num(stored[5])
if tonumber(stored[1]) ~= period or tonumber(stored[2]) ~= period_s then spent = 0 end

local horizon = fmt(now - window)
local old = redis.call('ZRANGEBYSCORE', log, '-inf', horizon)
for _, rid in ipairs(old) do
  tokens = tokens - num(redis.call('HGET', tok, rid))
  redis.call('HDEL', tok, rid)
end
if #old > 0 then redis.call('ZREMRANGEBYSCORE', log, '-inf', horizon) end
local gone = redis.call('ZRANGEBYSCORE', open, '-inf', fmt(now))
for _, rid in ipairs(gone) do
  local cost = num(redis.call('HGET', st, 'c:' .. rid))
  spent = spent + cost
  reserved = reserved - cost
  redis.call('HDEL', st, 'c:' .. rid)
end
if #gone > 0 then redis.call('ZREMRANGEBYSCORE', open, '-inf', fmt(now)) end
local count, parallel = redis.call('ZCARD', log), redis.call('ZCARD', open)
if parallel == 0 then reserved = 0 end

local refused, retry = '', 0
if budget >= 0 and spent + reserved + est_cost > budget then
  refused, retry = 'budget', (period + 1) * period_s - now
elseif rpm >= 0 and count >= rpm then
  local entry = redis.call('ZRANGE', log, count - rpm, count - rpm, 'WITHSCORES')
  refused, retry = 'requests', tonumber(entry[2]) + window - now
elseif tpm >= 0 and tokens + est_tokens > tpm then
  refused, retry = 'tokens', window
  if est_tokens <= tpm then
    local entries = redis.call('ZRANGE', log, 0, -1, 'WITHSCORES')
    local left = tokens
    for i = 1, #entries, 2 do
      left = left - num(redis.call('HGET', tok, entries[i]))
      if left + est_tokens <= tpm then
        retry = tonumber(entries[i + 1]) + window - now
        break
      end
    end
  end
elseif max_parallel >= 0 and parallel >= max_parallel then
  refused, retry = 'concurrency', concurrency_retry
end

if refused == '' then
  local newest = redis.call('ZRANGE', log, -1, -1, 'WITHSCORES')
  local when = now
  if newest[2] and tonumber(newest[2]) > now then when = tonumber(newest[2]) end
  redis.call('ZADD', log, fmt(when), id)
  redis.call('HSET', tok, id, fmt(est_tokens))
  redis.call('ZADD', open, fmt(now + lease_s), id)
  redis.call('HSET', st, 'c:' .. id, fmt(est_cost))
  tokens, reserved = tokens + est_tokens, reserved + est_cost
  count, parallel = count + 1, parallel + 1
end
redis.call('HSET', st, 'p', fmt(period), 'ps', fmt(period_s), 's', fmt(spent),
           'r', fmt(reserved), 't', fmt(tokens))
for _, key in ipairs(KEYS) do redis.call('EXPIRE', key, ttl) end
local newest = redis.call('ZRANGE', log, -1, -1, 'WITHSCORES')
return {refused, fmt(retry), count, fmt(tokens), newest[2] or '', parallel,
        fmt(spent), fmt(reserved)}
"""
)

RECONCILE = (
    _COMMON
    + """
-- ARGV: now, id, actual_tokens, actual_cost, est_cost, period_s, ttl
local now, id = tonumber(ARGV[1]), ARGV[2]
local actual_tokens, actual_cost = tonumber(ARGV[3]), tonumber(ARGV[4])
local est_cost, ttl = tonumber(ARGV[5]), tonumber(ARGV[7])

local stored = redis.call('HMGET', st, 'p', 'ps', 's', 'r', 't')
local period_s = tonumber(stored[2]) or tonumber(ARGV[6])
local period = math.floor(now / period_s)
local spent, reserved, tokens = num(stored[3]), num(stored[4]), num(stored[5])
if tonumber(stored[1]) ~= period or tonumber(stored[2]) ~= period_s then spent = 0 end

if redis.call('ZREM', open, id) == 1 then
  local cost = num(redis.call('HGET', st, 'c:' .. id))
  redis.call('HDEL', st, 'c:' .. id)
  if redis.call('ZCARD', open) == 0 then reserved = 0 else reserved = reserved - cost end
  spent = spent + actual_cost
else
  -- The lease ran out and its estimate was charged: charge the difference.
  spent = math.max(0, spent + actual_cost - est_cost)
end
local before = redis.call('HGET', tok, id)
if before then
  tokens = tokens + actual_tokens - tonumber(before)
  redis.call('HSET', tok, id, fmt(actual_tokens))
end
redis.call('HSET', st, 'p', fmt(period), 'ps', fmt(period_s), 's', fmt(spent),
           'r', fmt(reserved), 't', fmt(tokens))
for _, key in ipairs(KEYS) do redis.call('EXPIRE', key, ttl) end
return 1
"""
)
