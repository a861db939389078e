//! The Lua scripts of the Redis store. The destination's two, on its keys (one hash slot):
//! `KEYS[1]` the payers hash (user id -> that user's latest withdrawal times to the
//! destination, newest first, comma-separated microseconds, at most `DEST_TIMES`), `KEYS[2]`
//! the payers sorted set (user id -> the newest of those times), `KEYS[3]` the earliest
//! payments hash (`u`: the earliest payment's user's hash, as decimal text; `t`: its time;
//! `o`: the earliest time of a payment by a user of another hash, absent when none; the whole
//! key absent when no payment: `First` in `state/destination.rs`). They keep exactly what the
//! in-process destination record keeps (see `state/destination.rs`, whose `record` and
//! `other_users` they follow step by step), so both stores decide alike.
//!
//! Times are integers of microseconds below 2^53, exact in Lua's doubles and in sorted-set
//! scores; numbers go back to Redis as `%.0f` strings (Lua's own conversion would round).

/// Counts the distinct users other than `ARGV[1]` whose latest time at or before `now`
/// (`ARGV[2]`) lies in `(ARGV[4], now]` (24 hours) and `(ARGV[3], now]` (30 days), and finds
/// the earliest payment at or before `now` by a user whose hash is not `ARGV[5]` (none when
/// the newest payment is `ARGV[6]` microseconds, the retention, or more before `now`: see
/// `DestRecord::others_first`); returns `{day, month, found, time}` (`found` 0 or 1). A payer
/// whose newest time is at or before `now` is counted by `ZCOUNT` alone; only payers with a
/// time after `now` (events processed out of order) are read.
pub(crate) const DEST_USERS: &str = r#"
local now = tonumber(ARGV[2])
local month_start = tonumber(ARGV[3])
local day_start = tonumber(ARGV[4])
local month = redis.call('ZCOUNT', KEYS[2], '(' .. ARGV[3], ARGV[2])
local day = redis.call('ZCOUNT', KEYS[2], '(' .. ARGV[4], ARGV[2])
local own = redis.call('ZSCORE', KEYS[2], ARGV[1])
if own then
  own = tonumber(own)
  if own <= now and own > month_start then
    month = month - 1
    if own > day_start then day = day - 1 end
  end
end
local later = redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. ARGV[2], '+inf')
for _, user in ipairs(later) do
  if user ~= ARGV[1] then
    local times = redis.call('HGET', KEYS[1], user)
    if times then
      for t in string.gmatch(times, '[^,]+') do
        local x = tonumber(t)
        if x <= now then
          if x > month_start then
            month = month + 1
            if x > day_start then day = day + 1 end
          end
          break
        end
      end
    end
  end
end
local found, first = 0, 0
local f = redis.call('HMGET', KEYS[3], 'u', 't', 'o')
if f[2] then
  local newest = redis.call('ZREVRANGE', KEYS[2], 0, 0, 'WITHSCORES')
  if newest[2] and tonumber(newest[2]) > now - tonumber(ARGV[6]) then
    local t = f[3]
    if f[1] ~= ARGV[5] then t = f[2] end
    if t and tonumber(t) <= now then
      found, first = 1, tonumber(t)
    end
  end
end
return {day, month, found, first}
"#;

/// Remembers that `ARGV[1]` paid the destination at `ARGV[2]`: keeps the user's `ARGV[5]`
/// latest distinct times, forgets the stalest payer past `ARGV[4]` payers, and forgets payers
/// whose newest time is `ARGV[3]` microseconds before the earlier of this withdrawal and the
/// destination's newest before it; refreshes the keys' safety-net TTL (`ARGV[6]` seconds).
/// Keeps the earliest payments in `KEYS[3]` (`ARGV[7]`: the user's hash), starting them again
/// when the destination's newest payment before this one is `ARGV[3]` or more before it
/// (`DestRecord::record`). Recording the same (user, time) twice changes nothing.
pub(crate) const DEST_RECORD: &str = r#"
local user = ARGV[1]
local ts = tonumber(ARGV[2])
local keep = tonumber(ARGV[5])
local newest = redis.call('ZREVRANGE', KEYS[2], 0, 0, 'WITHSCORES')
local before = nil
if newest[2] then before = tonumber(newest[2]) end
local old = redis.call('HGET', KEYS[1], user)
local times = {}
if old then
  local seen = false
  for t in string.gmatch(old, '[^,]+') do
    times[#times + 1] = t
    if tonumber(t) == ts then seen = true end
  end
  if not seen then
    local pos = nil
    for i, t in ipairs(times) do
      if ts > tonumber(t) then pos = i break end
    end
    if pos == nil and #times < keep then pos = #times + 1 end
    if pos then
      table.insert(times, pos, ARGV[2])
      while #times > keep do table.remove(times) end
    end
  end
else
  if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[4]) then
    local stalest = redis.call('ZRANGE', KEYS[2], 0, 0)
    if stalest[1] then
      redis.call('HDEL', KEYS[1], stalest[1])
      redis.call('ZREM', KEYS[2], stalest[1])
    end
  end
  times = {ARGV[2]}
end
redis.call('HSET', KEYS[1], user, table.concat(times, ','))
redis.call('ZADD', KEYS[2], times[1], user)
if before then
  local horizon = string.format('%.0f', math.min(before, ts) - tonumber(ARGV[3]))
  local stale = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', horizon)
  for _, u in ipairs(stale) do redis.call('HDEL', KEYS[1], u) end
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', horizon)
end
local me = ARGV[7]
local fu, ft, fo = false, false, false
if before and before > ts - tonumber(ARGV[3]) then
  local f = redis.call('HMGET', KEYS[3], 'u', 't', 'o')
  fu = f[1]
  if f[2] then ft = tonumber(f[2]) end
  if f[3] then fo = tonumber(f[3]) end
end
if not ft then
  fu, ft, fo = me, ts, false
elseif me == fu then
  if ts < ft then ft = ts end
elseif ts < ft then
  fu, ft, fo = me, ts, ft
elseif (not fo) or ts < fo then
  fo = ts
end
redis.call('DEL', KEYS[3])
if fo then
  redis.call('HSET', KEYS[3], 'u', fu, 't', string.format('%.0f', ft), 'o', string.format('%.0f', fo))
else
  redis.call('HSET', KEYS[3], 'u', fu, 't', string.format('%.0f', ft))
end
redis.call('EXPIRE', KEYS[1], ARGV[6])
redis.call('EXPIRE', KEYS[2], ARGV[6])
redis.call('EXPIRE', KEYS[3], ARGV[6])
return 1
"#;

/// The compare-and-set of one user's record, on the user's keys alone (one slot): `KEYS[1]`
/// the record, `KEYS[2]` the ids of the withdrawals applied to it in the last `ARGV[6]` ms
/// (sorted set, id -> wall-clock ms; unused without an id). Sets the record to `ARGV[2]` (TTL
/// `ARGV[3]` s) when the stored one is still `ARGV[1]` (`""`: no record), and adds the
/// withdrawal id `ARGV[4]` (when not `""`) at `ARGV[5]` ms; returns `{1}`. An id applied
/// already changes nothing: `{2}`. A record changed meanwhile changes nothing either: `{0, the
/// record now}`, so that the caller updates that one without reading it again.
pub(crate) const USER_CAS: &str = r#"
local id = ARGV[4]
if id ~= '' then
  local horizon = string.format('%.0f', tonumber(ARGV[5]) - tonumber(ARGV[6]))
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. horizon)
  if redis.call('ZSCORE', KEYS[2], id) then return {2} end
end
local now = redis.call('GET', KEYS[1])
if (now or '') ~= ARGV[1] then return {0, now} end
redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
if id ~= '' then
  redis.call('ZADD', KEYS[2], ARGV[5], id)
  redis.call('PEXPIRE', KEYS[2], ARGV[6])
end
return {1}
"#;
