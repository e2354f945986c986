--- What happened on this node, for the tools that look at the cluster
-- (`pogo.observer`, the web page, `/metrics`, `bin/pogo status` and `top`):
-- counters per distributed supervisor and a bounded log of notable events.
--
-- The distributed supervisor reports here (through
-- `pogo.dynamic_supervisor.events`) every child it starts, stops, restarts
-- and moves in: each report is a counter increment, and a restart or a move
-- also becomes an event. The log keeps the last `CAPACITY` events, each
-- with a sequence number, so a tool that asks "what happened since event
-- N" repeatedly sees each event once; a tool that fell behind by more than
-- the capacity gets the newest ones and can tell that some were lost (their
-- numbers are missing). Both live in this module, one per Lua state, so one
-- per node: nothing crosses the wire until a tool asks (`pogo.observer`).
--
-- Events are plain tables of strings and numbers (they travel by rpc and
-- into JSON): `{seq =, time = ms since the epoch, kind = "restart" | "move"
-- | "start_failed", node =, supervisor =, id = the child id as text, detail =}`.
-- @module pogo.observer.timeline
local uv = require "luv"

local M = {}

--- How many events the log keeps.
M.CAPACITY = 512

local log = {}      -- seq -> event, for the last CAPACITY sequence numbers
local last = 0      -- the newest sequence number (0: none yet)
local counters = {} -- supervisor scope -> {starts =, stops =, restarts =, moves =, failed_starts =}

local describe -- events.describe, given by `describe_with` (no require cycle)

--- Wall-clock time in milliseconds since the epoch (events of different
-- nodes are ordered by it, up to the skew of their clocks).
-- @treturn integer
function M.wall_ms()
  local s, us = uv.gettimeofday()
  return s * 1000 + us // 1000
end

--- The counters of a supervisor (created at 0), by its scope (two
-- supervisors are two scopes; two may share a name as tools show it).
-- @tparam string name its scope
-- @treturn table `{starts =, stops =, restarts =, moves =, failed_starts =}`
function M.counters_of(name)
  local c = counters[name]
  if not c then
    c = { starts = 0, stops = 0, restarts = 0, moves = 0, failed_starts = 0 }
    counters[name] = c
  end
  return c
end

--- Every supervisor's counters (a copy).
-- @treturn table scope -> counters
function M.counters()
  local out = {}
  for name, c in pairs(counters) do
    out[name] = { starts = c.starts, stops = c.stops, restarts = c.restarts, moves = c.moves,
                  failed_starts = c.failed_starts }
  end
  return out
end

local function text(v)
  if type(v) == "table" and getmetatable(v) and v.error ~= nil then v = v.error end -- a crash reason
  local s = type(v) == "string" and v or (describe and describe(v) or tostring(v))
  if #s > 300 then s = s:sub(1, 297) .. "..." end
  return s
end

--- Add an event to the log.
-- @tparam string kind "restart", "move", "start_failed", ...
-- @tparam string supervisor its name
-- @param id the child id
-- @param detail a reason or the nodes of a move (made text)
-- @tparam[opt] string node where it happened (default: this node)
function M.record(kind, supervisor, id, detail, node)
  last = last + 1
  log[last] = { seq = last, time = M.wall_ms(), kind = kind, node = node or require("pogo").node(),
                supervisor = supervisor, id = text(id), detail = detail ~= nil and text(detail) or nil }
  log[last - M.CAPACITY] = nil
end

--- The events after sequence number `seq` (oldest first), at most `CAPACITY`.
-- @tparam[opt=0] integer seq
-- @treturn {table,...} the events
-- @treturn integer the newest sequence number
function M.since(seq)
  seq = seq or 0
  if seq > last then seq = 0 end -- a new incarnation of the log (this node restarted)
  local out = {}
  for i = math.max(seq + 1, last - M.CAPACITY + 1, 1), last do out[#out + 1] = log[i] end
  return out, last
end

--- What a distributed supervisor did (called by `pogo.dynamic_supervisor.events`).
-- @param sup the supervisor's state (`name`, `scope`: its counters are its
--  scope's, its events show its name, else its scope), or a name (both)
-- @tparam string what "child_started", "child_stopped", "child_moved",
--  "restart" or "start_failed"
-- @param id the child id
-- @param a the reason (stopped, restart, start_failed) or the node it came from (moved)
-- @param b the node it went to (moved)
function M.supervisor_event(sup, what, id, a, b)
  local key = sup
  if type(sup) == "table" then sup, key = tostring(sup.name or sup.scope), tostring(sup.scope) end
  local c = M.counters_of(key)
  if what == "child_started" then
    c.starts = c.starts + 1
  elseif what == "child_stopped" then
    c.stops = c.stops + 1
  elseif what == "child_moved" then
    c.moves = c.moves + 1
    M.record("move", sup, id, tostring(a) .. " -> " .. tostring(b))
  elseif what == "restart" then
    c.restarts = c.restarts + 1
    M.record("restart", sup, id, a)
  elseif what == "start_failed" then
    c.failed_starts = c.failed_starts + 1
    M.record("start_failed", sup, id, a)
  end
end

--- Set the function that makes child ids text (events.describe).
-- @tparam function f
function M.describe_with(f)
  describe = f
end

return M
