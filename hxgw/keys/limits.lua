-- The Redis limiter's script: hxgw/keys/redis_scripts.py says what it does and how it is
-- called. Loaded once at import; EVALSHA calls it by the SHA-1 of this file's text.
local log, tok, open, st, gone = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local window, concurrency_retry = tonumber(ARGV[1]), tonumber(ARGV[2])
local lease_s, longest = tonumber(ARGV[3]), tonumber(ARGV[1])
-- When the gateway sent this call: an operation's own `now` may be long past (a
-- correction kept while Redis was away), where a tombstone's time must not be.
local sent = tonumber(ARGV[4])
local function num(v) return tonumber(v) or 0 end
local function fmt(x) return string.format('%.17g', x) end

local stored = redis.call('HMGET', st, 'p', 'ps', 's', 'r', 't', 'g', 'b', 'u')
local period, period_s = tonumber(stored[1]), tonumber(stored[2])
-- The keys live as long as the longest span they count: a call that only lets go of a
-- reservation must not cut a budget's spend down to a window's life.
if period_s and period_s > longest then longest = period_s end
-- No state: a new key, one idle past its keys' expiry, or a Redis that restarted without
-- its data. Its spend is awaited (`u`): the first reservation with a budget is told to
-- read it back (`new`, and the others `wait`, for `hold` seconds), until a seed comes.
local created = period == nil
local awaited, hold = tonumber(stored[8]), 5
if created then awaited = 0 end
-- When this state began: a reservation made before was never seen here. (0: a state
-- written by an earlier script, which did not say; its reservations count as seen.)
local born = num(stored[7])
if created then
  born = math.huge
  for i = 5, #ARGV do born = math.min(born, tonumber(string.match(ARGV[i], '^%S+ (%S+)'))) end
end
local spent, reserved, tokens = num(stored[3]), num(stored[4]), num(stored[5])
local count, parallel = redis.call('ZCARD', log), redis.call('ZCARD', open)
-- The soonest expiry of a tombstone in `gone` (nil: none, and `gone` is not read).
local graves = tonumber(stored[6])
local function first(key)
  return tonumber(redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')[2])
end
-- The oldest log entry and the soonest lease expiry: an operation with nothing
-- due (most of them) scans neither set.
local newest = tonumber(redis.call('ZRANGE', log, -1, -1, 'WITHSCORES')[2])
local oldest, soonest = first(log), first(open)

-- A reservation's `now` is the gateway's clock now; a correction's may be long past (kept
-- while Redis was away): only a reservation may set the period back (`far`), from a state
-- a clock far ahead had left (window._rolls).
local function roll(now, length, far)
  local p = math.floor(now / length)
  -- A new length carries the spend, if the old period reached into the new one
  -- (instances see a change a moment apart).
  if length ~= period_s then
    if period == nil or (period + 1) * period_s <= p * length then spent = 0 end
    period, period_s = p, length
  elseif p > period or (far and p < period - 1) then period, spent = p, 0 end
  if length > longest then longest = length end
end

local function expire(now)
  if oldest and oldest <= now - window then
    local horizon = fmt(now - window)
    local old = redis.call('ZRANGEBYSCORE', log, '-inf', horizon)
    for _, rid in ipairs(old) do
      tokens = tokens - num(redis.call('HGET', tok, rid))
      redis.call('HDEL', tok, rid)
    end
    redis.call('ZREMRANGEBYSCORE', log, '-inf', horizon)
    count = count - #old
    oldest = first(log)
    if count == 0 then newest = nil end
  end
  if soonest and soonest <= now then
    local lapsed = redis.call('ZRANGEBYSCORE', open, '-inf', fmt(now))
    for _, rid in ipairs(lapsed) do
      local cost = num(redis.call('HGET', st, 'c:' .. rid))
      spent = spent + cost
      reserved = reserved - cost
      redis.call('HDEL', st, 'c:' .. rid)
    end
    redis.call('ZREMRANGEBYSCORE', open, '-inf', fmt(now))
    parallel = parallel - #lapsed
    soonest = first(open)
  end
  if parallel == 0 then reserved = 0 end
end

local function refusal(now, est_tokens, est_cost, rpm, tpm, max_parallel, budget)
  if budget >= 0 and spent + reserved + est_cost > budget then
    -- Held only by requests under way: room comes back as they end.
    if spent + est_cost <= budget then return 'budget', concurrency_retry end
    return 'budget', (period + 1) * period_s - now
  elseif rpm >= 0 and count >= rpm then
    local entry = redis.call('ZRANGE', log, count - rpm, count - rpm, 'WITHSCORES')
    return 'requests', tonumber(entry[2]) + window - now
  elseif tpm >= 0 and tokens + est_tokens > tpm then
    if est_tokens > tpm then return 'tokens', window end
    -- Held only by requests under way, at their estimates: room comes back as they end.
    local held = 0
    for _, rid in ipairs(redis.call('ZRANGE', open, 0, -1)) do
      held = held + num(redis.call('HGET', tok, rid))
    end
    if tokens - held + est_tokens <= tpm then return 'tokens', concurrency_retry end
    -- The oldest entries a page at a time, until enough leave the window: a busy key's
    -- log holds thousands, which read whole on each refusal had stalled Redis for all.
    local left, from = tokens, 0
    while true do
      local page = redis.call('ZRANGE', log, from, from + 63, 'WITHSCORES')
      if #page == 0 then return 'tokens', window end
      for i = 1, #page, 2 do
        left = left - num(redis.call('HGET', tok, page[i]))
        if left + est_tokens <= tpm then return 'tokens', tonumber(page[i + 1]) + window - now end
      end
      from = from + 64
    end
  elseif max_parallel >= 0 and parallel >= max_parallel then
    return 'concurrency', concurrency_retry
  end
  return '-', 0
end

-- Tombstones whose time is over go; `graves` becomes the soonest left.
local function bury(now)
  if graves and graves <= now then
    redis.call('ZREMRANGEBYSCORE', gone, '-inf', fmt(now))
    graves = first(gone)
  end
end

local function answer(refused, retry, said)
  return table.concat({refused, fmt(retry), count, fmt(tokens), newest and fmt(newest) or '-',
                       parallel, fmt(spent), fmt(reserved), said}, ' ')
end

local function reserve(f)
  local now, id, est_tokens, est_cost = tonumber(f[2]), f[3], tonumber(f[4]), tonumber(f[5])
  if graves then
    bury(now)
    if graves and redis.call('ZREM', gone, id) == 1 then
      -- Released before it came (its batch was held up on the way): its request failed
      -- long ago, and nobody reads this answer. Not made.
      return answer('concurrency', concurrency_retry, '-')
    end
  end
  roll(now, tonumber(f[10]), true)
  expire(now)
  local budget, said = tonumber(f[9]), '-'
  if budget >= 0 and awaited then
    -- The spend this period is not known here: one gateway reads it back, the others
    -- wait for it, for `hold` seconds (then the next asks again: that one may have died).
    if now < awaited then return answer('budget', concurrency_retry, 'wait') end
    said, awaited = 'new', now + hold
  end
  local refused, retry = refusal(now, est_tokens, est_cost, tonumber(f[6]), tonumber(f[7]),
                                 tonumber(f[8]), budget)
  if refused == '-' then
    -- Instances may disagree by microseconds on `now`; the log stays ordered by
    -- time when no entry goes before the newest.
    local when = now
    if newest and newest > now then when = newest end
    redis.call('ZADD', log, fmt(when), id)
    redis.call('HSET', tok, id, fmt(est_tokens))
    redis.call('ZADD', open, fmt(now + lease_s), id)
    if not oldest then oldest = when end
    if not soonest or now + lease_s < soonest then soonest = now + lease_s end
    redis.call('HSET', st, 'c:' .. id, fmt(est_cost))
    tokens, reserved, newest = tokens + est_tokens, reserved + est_cost, when
    count, parallel = count + 1, parallel + 1
  end
  return answer(refused, retry, said)
end

-- The spend this period as the usage ledger has it, for a key whose state was new: the
-- larger of it and the spend counted here since (which the ledger may hold in part).
-- Reservations need not wait for it any longer.
local function seed(f)
  roll(tonumber(f[2]), tonumber(f[4]))
  local amount = tonumber(f[3])
  if period == tonumber(f[5]) and amount > spent then spent = amount end
  awaited = nil
  return 'ok'
end

-- What a request counted in a gateway's own memory while Redis was away (fail_open)
-- spent: added to this period's spend, which it belongs to, once Redis answers again.
-- Once: it is sent again when its batch fails, which may have run; a tombstone in
-- `gone` says it was added, for a lease.
local function add(f)
  roll(tonumber(f[2]), tonumber(f[5]))
  bury(sent)
  local until_ = sent + lease_s
  if redis.call('ZADD', gone, 'NX', fmt(until_), 'a:' .. f[3]) == 1 then
    redis.call('EXPIRE', gone, math.ceil(lease_s) + 60)
    if not graves or until_ < graves then graves = until_ end
    if period == tonumber(f[6]) then spent = spent + tonumber(f[4]) end
  end
  return 'ok'
end

-- An open reservation (already taken out of `open`) ends: its slot and its estimate
-- `cost` are held no more.
local function unreserve(id, cost)
  redis.call('HDEL', st, 'c:' .. id)
  parallel = parallel - 1
  if parallel == 0 then reserved = 0 else reserved = reserved - cost end
end

local function reconcile(f)
  local now, id, actual_tokens = tonumber(f[2]), f[3], tonumber(f[4])
  local actual_cost, est_cost = tonumber(f[5]), tonumber(f[6])
  local opened = redis.call('ZREM', open, id) == 1
  -- Sent again (`C`): its first sending may have run. Only an open reservation's.
  if f[1] == 'C' and not opened then return 'ok' end
  roll(now, period_s or tonumber(f[7]))
  local at = tonumber(f[8])  -- when its reservation was made (an older gateway: nil)
  if opened then
    -- The correction carries the estimate `c:<id>` holds (both written "%.17g"
    -- from one float), so it is not read back: one call fewer per correction.
    unreserve(id, est_cost)
    spent = spent + actual_cost
  elseif at and at < born then
    -- Made before this state began (Redis lost its data since): never charged here.
    spent = spent + actual_cost
  elseif at and math.floor(at / period_s) ~= period then
    -- The lease ran out and its estimate was charged, maybe to the period before: this
    -- one gets the excess, never a credit (window.lapsed_charge).
    spent = spent + math.max(0, actual_cost - est_cost)
  else
    -- The lease ran out and its estimate was charged: charge the difference.
    spent = math.max(0, spent + actual_cost - est_cost)
  end
  local before = redis.call('HGET', tok, id)
  if before then
    tokens = tokens + actual_tokens - tonumber(before)
    redis.call('HSET', tok, id, fmt(actual_tokens))
  end
  return 'ok'
end

-- A reservation whose request was not served (its batch got no answer in time, and the
-- request a 503): let go of it, slot, estimate and window entry, if the batch ran after
-- all. One not open has not come yet (a network that holds its batch up), or has and its
-- lease ran out and charged it: a tombstone keeps it from being made, for a lease.
local function release(f)
  local now, id = tonumber(f[2]), f[3]
  if redis.call('ZREM', open, id) ~= 1 then
    bury(now)
    local until_ = now + lease_s
    redis.call('ZADD', gone, fmt(until_), id)
    redis.call('EXPIRE', gone, math.ceil(lease_s) + 60)
    if not graves or until_ < graves then graves = until_ end
  else
    unreserve(id, num(redis.call('HGET', st, 'c:' .. id)))
    tokens = tokens - num(redis.call('HGET', tok, id))
    redis.call('HDEL', tok, id)
    count = count - redis.call('ZREM', log, id)
  end
  return 'ok'
end

local out = {}
for i = 5, #ARGV do
  local f = {}
  for field in string.gmatch(ARGV[i], '%S+') do f[#f + 1] = field end
  if f[1] == 'r' then out[#out + 1] = reserve(f)
  elseif f[1] == 'x' then out[#out + 1] = release(f)
  elseif f[1] == 's' then out[#out + 1] = seed(f)
  elseif f[1] == 'a' then out[#out + 1] = add(f)
  else out[#out + 1] = reconcile(f) end
end
if period then
  local fields = {'p', fmt(period), 'ps', fmt(period_s), 's', fmt(spent), 'r', fmt(reserved),
                  't', fmt(tokens)}
  if created then fields[#fields + 1], fields[#fields + 2] = 'b', fmt(born) end
  -- Written with the rest: a key without a budget awaits its spend as long as it lives.
  if awaited then fields[#fields + 1], fields[#fields + 2] = 'u', fmt(awaited)
  elseif stored[8] then redis.call('HDEL', st, 'u') end
  redis.call('HSET', st, unpack(fields))
end
if graves then redis.call('HSET', st, 'g', fmt(graves))
elseif stored[6] then redis.call('HDEL', st, 'g') end
-- `gone` keeps the expiry its newest tombstone gave it.
local ttl = math.ceil(math.max(lease_s, longest) + window)
for i = 1, 4 do redis.call('EXPIRE', KEYS[i], ttl) end
return table.concat(out, '\n')
