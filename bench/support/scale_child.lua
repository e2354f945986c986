-- The idle child of bench/scale.lua. Its start counts on its node (all the
-- processes of a node share one Lua state): how many children started here,
-- when the last one did (uv.hrtime, comparable across the processes of one
-- machine), and, for a spec that carries the time of its request, the delay
-- from start_child to running.
local pogo = require "pogo"
local uv = require "luv"

--
-- The delays go into a histogram of fixed size, allocated once: a list that
-- grew with every start (12,000 numbers a node in the 60 s of churn) added
-- its own growth to the RSS growth the churn measures.
local HIST_N = 20000 -- buckets of 0.1 ms: [0, 2 s); longer delays are kept one by one

local M = { starts = 0, last = 0, delays = { n = 0, over = {} }, watcher = nil }
for k = 1, HIST_N do M.delays[k] = 0 end

local function idle() pogo.receive() end

function M.start_link(_, requested)
  local pid = pogo.spawn_link(idle)
  local t = uv.hrtime()
  M.starts, M.last = M.starts + 1, t
  if M.watcher then pogo.send(M.watcher, { "$start", t }) end -- the bench's failover rows
  if requested then
    local d = M.delays
    local ms = (t - requested) / 1e6
    local k = math.floor(ms * 10) + 1
    d.n = d.n + 1
    if k <= HIST_N then d[k] = d[k] + 1 else d.over[#d.over + 1] = ms end
  end
  return pid
end

--- The delays recorded since the last call, and forget them: {n =, counts =
-- {[bucket] = count} (bucket k: [(k-1)/10, k/10) ms), over = {ms, ...}}.
function M.take_delays()
  local d, counts = M.delays, {}
  for k = 1, HIST_N do
    if d[k] > 0 then counts[k], d[k] = d[k], 0 end
  end
  local out = { n = d.n, counts = counts, over = d.over }
  d.n, d.over = 0, {}
  return out
end

return M
