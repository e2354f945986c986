--- A local supervisor, in the manner of Erlang's supervisor.
--
-- Strategies `one_for_one`, `one_for_all`, `rest_for_one`; restart types
-- `permanent`, `transient`, `temporary`; restart intensity (`intensity` restarts
-- within `period_ms`, else the supervisor terminates its children and exits with
-- "shutdown"). Children are started in order and terminated in reverse order:
-- exit signal "shutdown", then "kill" after `shutdown` ms (or at once for
-- "brutal_kill", never for "infinity").
--
-- It is a `pogo.server`: requests are calls, child exits (it traps exits) and
-- retries of a failed restart (`{"$restart", child}`, sent to itself) are
-- infos, and `terminate` (the parent's exit, `server.stop`, giving up,
-- `pogo.stop`) shuts the children down. The restart intensity is a
-- `pogo.restart_intensity` window.
--
-- It reports what happens to its children as OTP's supervisor does (see
-- `pogo.supervisor_report`), through `pogo.log` with module
-- `pogo.supervisor`: a crash report for each child that exits abnormally, a
-- restart report for each child started again, a start error, and a report
-- when it gives up. A supervisor started outside any supervision tree is the
-- root of one, which `pogo.stop` terminates (see `pogo.shutdown`).
-- @module pogo.supervisor
local pogo = require "pogo"
local child_spec = require "pogo.child_spec"
local server = require "pogo.server"
local intensity = require "pogo.restart_intensity"
local report = require "pogo.supervisor_report"
local shutdown = require "pogo.shutdown"
local log = require "pogo.log"

local M = {}

local STRATEGY = { one_for_one = true, one_for_all = true, rest_for_one = true }

-- Terminate one running child of supervisor `sup`, with a shutdown_error
-- report if it did not end as asked; returns its exit reason.
local function shutdown_child(sup, child)
  local pid = child.pid
  if not pogo.is_pid(pid) then return nil end
  local reason, killed = child_spec.shutdown(pid, child.spec.shutdown)
  child.pid = nil
  if not report.stopped_as_asked(reason, child.spec) then
    sup:report(report.shutdown_error(sup.name, child.id, pid, reason, killed and child.spec.shutdown or nil))
  end
  return reason
end

local Sup = {}
Sup.__index = Sup

-- Children are kept in start order (for rest_for_one and shutdown order) and
-- indexed by the canonical encoding of their ids (equal tables are one id).
function Sup:find(id)
  local ok, key = pcall(pogo.core.encode, id) -- a bad id from a caller must not crash us
  local child = ok and self.by_key[key]
  if not child then return nil end
  for i, c in ipairs(self.children) do
    if c == child then return c, i end
  end
end

function Sup:add(child)
  child.key = child.key or pogo.core.encode(child.id)
  self.children[#self.children + 1] = child
  self.by_key[child.key] = child
end

function Sup:remove(child)
  self.by_key[child.key] = nil
  for i, c in ipairs(self.children) do
    if c == child then table.remove(self.children, i) return end
  end
end

-- Log a report (level, msg, fields) of pogo.supervisor_report.
function Sup:report(level, msg, fields)
  self.log.with(fields).log(level, msg)
end

function Sup:start_child_record(child)
  local pid, err = child_spec.start(child.spec)
  if not pid then return nil, err end
  if pogo.is_pid(pid) then
    pogo.link(pid)
    self.by_pid[pid] = child
    shutdown.track(pid)
  end
  child.pid = pid
  return pid
end

function Sup:terminate_all(from_index)
  for i = #self.children, from_index or 1, -1 do
    local c = self.children[i]
    if pogo.is_pid(c.pid) then
      self.by_pid[c.pid] = nil
      shutdown_child(self, c)
    end
  end
end

-- Start a stopped child again. When its start fails it shows as
-- "restarting" and is tried again from the mailbox (as one more restart, so
-- a child that cannot start ends in the supervisor giving up); false then.
function Sup:start_again(child)
  local pid, err = self:start_child_record(child)
  if pid then
    self:report(report.restart(self.name, child.id, pid))
    return true
  end
  self:report(report.start_error(self.name, child.id, err, "retrying"))
  child.pid = "restarting"
  pogo.send(pogo.self(), { "$restart", child })
  return false
end

-- Beyond the restart intensity (child exited last): the give-up report.
function Sup:give_up(child)
  self:report(report.give_up(self.name, pogo.self(), child.id, self.restarts.intensity, self.restarts.period))
  return false
end

-- Restart the children from index i (in order), for one_for_all/rest_for_one.
function Sup:restart_from(i)
  local list = {}
  for j = i, #self.children do list[#list + 1] = self.children[j] end
  for _, c in ipairs(list) do
    if c.spec.restart == "temporary" and c.pid == nil then
      self:remove(c)
    elseif (c.pid == nil or c.pid == "restarting") and not self:start_again(c) then
      return
    end
  end
end

-- Restart a child that exited (and, by the strategy, its siblings); false
-- when that is beyond the restart intensity: the supervisor then gives up.
function Sup:restart(child)
  if not self.restarts:add(pogo.now()) then return self:give_up(child) end
  local _, index = self:find(child.id)
  if not index then return true end
  if self.strategy == "one_for_one" then
    self:start_again(child)
    return true
  end
  local from = self.strategy == "one_for_all" and 1 or index
  self:terminate_all(from)
  self:restart_from(from)
  return true
end

-- A child exited; false when restarting it is beyond the restart intensity.
function Sup:child_exited(child, reason)
  self.by_pid[child.pid] = nil
  if not report.is_normal(reason) then self:report(report.crash(self.name, child.id, child.pid, reason)) end
  child.pid = nil
  local r = child.spec.restart
  if r == "temporary" then
    self:remove(child)
    return true
  end
  if r == "transient" and (reason == "normal" or reason == "shutdown") then return true end
  return self:restart(child)
end

function Sup:which_children()
  local out = {}
  for _, c in ipairs(self.children) do
    local pid = c.pid
    if pid == nil then pid = "undefined" end
    out[#out + 1] = { c.id, pid, c.spec.type, c.spec.modules,
      id = c.id, pid = pid, type = c.spec.type, modules = c.spec.modules }
  end
  return out
end

function Sup:count_children()
  local n = { specs = 0, active = 0, supervisors = 0, workers = 0 }
  for _, c in ipairs(self.children) do
    n.specs = n.specs + 1
    if pogo.is_pid(c.pid) then n.active = n.active + 1 end
    if c.spec.type == "supervisor" then n.supervisors = n.supervisors + 1 else n.workers = n.workers + 1 end
  end
  return n
end

-- Answer a request of the API below: the reply is an array {value, error}.
function Sup:call(req)
  local op = req[1]
  if op == "start_child" then
    local spec, err = child_spec.normalize(req[2])
    if not spec then return { nil, err } end
    local existing = self:find(spec.id)
    if existing then
      if pogo.is_pid(existing.pid) then return { nil, "already started: " .. tostring(existing.pid) } end
      return { nil, "already present" }
    end
    local child = { id = spec.id, spec = spec }
    local pid, e = self:start_child_record(child)
    if not pid then return { nil, e } end
    self:add(child)
    return { pid }
  elseif op == "terminate_child" then
    local child = self:find(req[2])
    if not child then return { nil, "not found" } end
    if pogo.is_pid(child.pid) then
      self.by_pid[child.pid] = nil
      shutdown_child(self, child)
    end
    child.pid = nil
    if child.spec.restart == "temporary" then self:remove(child) end
    return { true }
  elseif op == "restart_child" then
    local child = self:find(req[2])
    if not child then return { nil, "not found" } end
    if pogo.is_pid(child.pid) then return { nil, "running" } end
    if child.pid == "restarting" then return { nil, "restarting" } end
    local pid, e = self:start_child_record(child)
    if not pid then return { nil, e } end
    return { pid }
  elseif op == "delete_child" then
    local child = self:find(req[2])
    if not child then return { nil, "not found" } end
    if pogo.is_pid(child.pid) or child.pid == "restarting" then return { nil, "running" } end
    self:remove(child)
    return { true }
  elseif op == "which_children" then
    return { self:which_children() }
  elseif op == "count_children" then
    return { self:count_children() }
  end
  return { nil, "unknown request" }
end

-- ---- the server callbacks (pogo.server) ----

local Server = {}

function Server.init(arg)
  local specs, opts = arg[1], arg[2]
  shutdown.supervisor_started()
  local name = opts.name ~= nil and tostring(opts.name) or tostring(pogo.self())
  local self = setmetatable({
    strategy = opts.strategy or "one_for_one",
    restarts = intensity.new(opts.intensity or 3, opts.period_ms or 5000),
    children = {}, by_pid = {}, by_key = {},
    name = name, -- in reports
    log = log.with { module = "pogo.supervisor", supervisor = name },
  }, Sup)
  for _, spec in ipairs(specs) do
    local child = { id = spec.id, spec = spec }
    local pid, err = self:start_child_record(child)
    if not pid then
      self:report(report.start_error(self.name, spec.id, err))
      self:terminate_all()
      return nil, "failed to start child " .. tostring(spec.id) .. ": " .. tostring(err)
    end
    self:add(child)
  end
  return self
end

function Server.handle_call(req, _, self)
  -- a bad request (say, an id that cannot be encoded) is answered, not fatal
  local ok, r = pcall(self.call, self, req)
  return ok and r or { nil, "bad request: " .. tostring(r) }, self
end

function Server.handle_info(msg, self)
  local tag = type(msg) == "table" and msg[1]
  local going_on = true
  if tag == "EXIT" then
    local pid = msg[2]
    local child = self.by_pid[pid]
    if child and child.pid == pid then going_on = self:child_exited(child, msg[3]) end
  elseif tag == "$restart" then
    local child = msg[2]
    if child.pid == "restarting" and self:find(child.id) == child then
      if self.strategy == "one_for_one" then
        going_on = self:restart(child)
      elseif self.restarts:add(pogo.now()) then
        local _, i = self:find(child.id)
        self:restart_from(i)
      else
        going_on = self:give_up(child)
      end
    end
  end
  if not going_on then return self, "stop", "shutdown" end -- beyond the restart intensity
  return self
end

-- The parent's exit, a stop, or giving up: children go in reverse start order.
function Server.terminate(_, self)
  self:terminate_all()
end

-- The options of start_link.
local OPTIONS = { strategy = true, intensity = true, period_ms = true, name = true }

-- The first unknown option (in the order of their names, as pogo.dynamic_supervisor
-- names it), or nil.
local function unknown_option(opts)
  local unknown
  for k in pairs(opts) do
    if not OPTIONS[k] and (unknown == nil or tostring(k) < unknown) then unknown = tostring(k) end
  end
  return unknown
end

--- Start a supervisor linked to the caller.
-- @tparam table children child specs (or shorthands), started in order
-- @tparam[opt] table opts `strategy` ("one_for_one"), `intensity` (3), `period_ms` (5000), `name`;
--  opts that is not a table raises
-- @return pid, or nil and the reason (`"invalid child spec: ..."` for bad specs,
--  `"unknown option: <name>"`, ...)
function M.start_link(children, opts)
  if opts ~= nil and type(opts) ~= "table" then
    error("pogo.supervisor.start_link: opts must be a table, got " .. type(opts), 2)
  end
  opts = opts or {}
  if type(children) ~= "table" then
    error("pogo.supervisor.start_link: children must be an array of child specs, got " .. type(children), 2)
  end
  local unknown = unknown_option(opts)
  if unknown then return nil, "unknown option: " .. unknown end
  if opts.strategy ~= nil and not STRATEGY[opts.strategy] then
    return nil, "unknown strategy '" .. tostring(opts.strategy) .. "'"
  end
  if opts.intensity ~= nil and (math.type(opts.intensity) ~= "integer" or opts.intensity < 0) then
    return nil, "intensity must be a non-negative integer"
  end
  if opts.period_ms ~= nil and (type(opts.period_ms) ~= "number" or opts.period_ms <= 0) then
    return nil, "period_ms must be a positive number"
  end
  local specs, seen = {}, {}
  for i, c in ipairs(children) do
    local spec, err = child_spec.normalize(c)
    if not spec then return nil, err end
    local key = pogo.core.encode(spec.id)
    if seen[key] then return nil, "invalid child spec: duplicate id " .. tostring(spec.id) end
    seen[key] = true
    specs[i] = spec
  end
  return server.start_link(Server, { specs, opts }, { name = opts.name, trap_exit = true })
end

local function call(sup, req)
  local r = pogo.call(sup, req, math.huge)
  return r[1], r[2]
end

--- Start a child under `sup`.
-- @return pid, or nil and the reason
function M.start_child(sup, spec)
  local s, err = child_spec.normalize(spec)
  if not s then return nil, err end
  return call(sup, { "start_child", s })
end

--- Terminate a child (its spec is kept, except for temporary children).
-- @return true, or nil and "not found"
function M.terminate_child(sup, id) return call(sup, { "terminate_child", id }) end

--- Restart a terminated child.
-- @return pid, or nil and the reason
function M.restart_child(sup, id) return call(sup, { "restart_child", id }) end

--- Delete the spec of a terminated child.
-- @return true, or nil and the reason
function M.delete_child(sup, id) return call(sup, { "delete_child", id }) end

--- The children: `{{id, pid | "restarting" | "undefined", type, modules}, ...}`
-- (each entry also has the fields `id`, `pid`, `type`, `modules`).
function M.which_children(sup) return (call(sup, { "which_children" })) end

--- Counts: `{specs =, active =, supervisors =, workers =}`.
function M.count_children(sup) return (call(sup, { "count_children" })) end

return M
