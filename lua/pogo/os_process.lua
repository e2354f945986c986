--- OS processes as children: a program run under a pogo process, so local and
-- distributed supervisors start, restart, stop and move it like any child.
--
--     { id = "indexer", start = {"pogo.os_process", "start_link",
--         { cmd = "indexer", args = {"--queue", "jobs"} }} }
--     -- or the shorthand: {"pogo.os_process", {id = "indexer", cmd = "indexer"}}
--
-- The pogo process lives as long as the program: when the program exits with
-- status 0 the process exits `"normal"`; any other status, or a signal, is a
-- crash with reason `{exit_status = n, signal = n, cmd = cmd}` (so a
-- `"transient"` child is restarted only after a failure). When the process is
-- asked to stop (an exit signal from its parent, or an abnormal one from a
-- link) it sends the program `kill_signal`, waits `kill_timeout_ms`, then
-- SIGKILLs it, and exits with that reason. If the process is killed outright
-- (`"kill"`), a watcher SIGKILLs the program. `pogo.stop()` stops the programs
-- under supervisors as their supervisors stop them (`kill_signal`, then
-- SIGKILL); then its `on_stop` hook sends `kill_signal` to every program this
-- node still runs (those started outside a supervisor); their processes then
-- do not exit on their own but only when stopped. A node that dies (SIGKILL)
-- cannot end its programs: they are orphaned, as with Erlang ports.
--
-- The process is a `pogo.server`: `os_pid` and `signal` are calls, the
-- program's exit is an info, and its `terminate` stops the program.
-- @module pogo.os_process
local pogo = require "pogo"
local uv = require "luv"
local server = require "pogo.server"

local M = {}

local STDIO = { inherit = { 0, 1, 2 }, ignore = { nil, nil, nil } }

-- The programs this Lua state runs: os pid -> {handle, kill_signal}.
local running = {}
pogo.on_stop(function()
  for _, p in pairs(running) do
    p.node_stopped = true
    pcall(uv.process_kill, p.handle, p.kill_signal)
  end
end)

-- A signal number from a name ("sigterm", "TERM") or a positive number, or nil.
local function signum(sig)
  if math.type(sig) == "integer" then return sig > 0 and sig or nil end
  if type(sig) ~= "string" then return nil end
  local name = sig:upper()
  if name:sub(1, 3) ~= "SIG" then name = "SIG" .. name end
  return uv.constants[name]
end

local function bad(fmt, ...) return nil, "pogo.os_process: " .. string.format(fmt, ...) end

-- Validate `opts`; returns the uv.spawn options, or nil and why.
local function spawn_options(opts)
  if type(opts) ~= "table" then return bad("options table expected, got %s", type(opts)) end
  if type(opts.cmd) ~= "string" or opts.cmd == "" then return bad("cmd must be a non-empty string") end
  local args = {}
  if opts.args ~= nil then
    if type(opts.args) ~= "table" then return bad("args must be an array of strings") end
    for i, a in ipairs(opts.args) do
      if type(a) ~= "string" and type(a) ~= "number" then return bad("args[%d] must be a string", i) end
      args[i] = tostring(a)
    end
  end
  local env
  if opts.env ~= nil then
    if type(opts.env) ~= "table" then return bad("env must be a table of name = value") end
    local merged = uv.os_environ()
    for k, v in pairs(opts.env) do
      if type(k) ~= "string" or (type(v) ~= "string" and type(v) ~= "number" and v ~= false) then
        return bad("env must map names to strings (false unsets), got %s = %s", tostring(k), type(v))
      end
      merged[k] = v ~= false and tostring(v) or nil
    end
    env = {}
    for k, v in pairs(merged) do env[#env + 1] = k .. "=" .. v end
    table.sort(env)
  end
  if opts.cwd ~= nil and type(opts.cwd) ~= "string" then return bad("cwd must be a string") end
  local stdio = STDIO[opts.stdio or "inherit"]
  if not stdio then return bad("stdio must be \"inherit\" or \"ignore\", got %s", tostring(opts.stdio)) end
  if not signum(opts.kill_signal or "sigterm") then
    return bad("kill_signal must be a signal name or number, got %s", tostring(opts.kill_signal))
  end
  local t = opts.kill_timeout_ms or 5000
  if math.type(t) ~= "integer" or t < 0 then return bad("kill_timeout_ms must be a non-negative integer") end
  return { args = args, env = env, cwd = opts.cwd, stdio = stdio }
end

local function is_exit(m) return type(m) == "table" and m[1] == "$os_exit" end

-- ---- the server callbacks (pogo.server): the process that runs one program ----

local Server = {}

-- Run the program; its exit comes as {"$os_exit", code, signal}.
function Server.init(arg)
  local opts, spawn_opts = arg[1], arg[2]
  local me = pogo.self()
  local st = {
    cmd = opts.cmd,
    sig = signum(opts.kill_signal or "sigterm"), -- kill_signal, as a number
    kill_timeout = opts.kill_timeout_ms or 5000,
    exited = false, -- the program has ended (set from luv's exit callback)
    handle = nil,   -- its luv process handle
    ospid = nil,    -- its OS pid
    entry = nil,    -- its entry in `running` (node_stopped: pogo.stop() ended it)
  }
  -- luv's exit callback runs from the loop, which may run while this process
  -- is preempted (pogo's preemption), before the lines after uv.spawn: it
  -- reads only st, and whichever side comes second cleans up
  local handle, ospid = uv.spawn(opts.cmd, spawn_opts, function(code, signal)
    st.exited = true
    if st.ospid then running[st.ospid] = nil end
    if st.handle and not st.handle:is_closing() then st.handle:close() end
    pogo.send(me, { "$os_exit", code, signal })
  end)
  if not handle then return nil, "pogo.os_process: cannot run " .. opts.cmd .. ": " .. tostring(ospid) end
  ospid = math.tointeger(ospid) or ospid
  st.entry = { handle = handle, kill_signal = st.sig }
  st.handle = handle
  st.ospid = ospid
  running[ospid] = st.entry
  if st.exited then -- it has already ended
    running[ospid] = nil
    if not handle:is_closing() then handle:close() end
  end
  -- killed outright, this process runs no more code: the watcher ends the program
  pogo.spawn(function()
    local ref = pogo.monitor(me)
    pogo.receive(function(m) return type(m) == "table" and m[1] == "DOWN" and m[2] == ref end)
    if not st.exited then pcall(uv.process_kill, handle, "sigkill") end
  end)
  return st
end

local function exit_reason(st, code, signal)
  if code == 0 and signal == 0 then return "normal" end
  return { exit_status = code, signal = signal ~= 0 and signal or nil, cmd = st.cmd }
end

function Server.handle_info(m, st)
  local tag = type(m) == "table" and m[1]
  if tag == "$os_exit" then
    -- ended by pogo.stop(): no crash to report, or a supervisor would start
    -- the program again while the node shuts down; wait to be stopped
    if not st.entry.node_stopped then return st, "stop", exit_reason(st, m[2], m[3]) end
  elseif tag == "EXIT" and m[3] ~= "normal" then
    return st, "stop", m[3] -- an abnormal exit of a link (the parent's is terminate's)
  end
  return st
end

function Server.handle_call(req, _, st)
  if req == "os_pid" then return st.ospid, st end
  if type(req) == "table" and req[1] == "signal" then
    local num = signum(req[2])
    if not num then return { nil, "unknown signal " .. tostring(req[2]) }, st end
    -- luv raises on a closed handle, returns nil, err on a failed kill
    local ok, r, err = pcall(uv.process_kill, st.handle, num)
    return (ok and r) and { true } or { nil, tostring(ok and err or r) }, st
  end
  return { nil, "unknown request" }, st
end

-- Stopping (the parent's exit, an abnormal exit of a link, a stop): the
-- program gets kill_signal, then SIGKILL after kill_timeout_ms.
function Server.terminate(_, st)
  if st.exited then return end
  pcall(uv.process_kill, st.handle, st.sig)
  if not pogo.receive(is_exit, st.kill_timeout) then
    pcall(uv.process_kill, st.handle, "sigkill")
    pogo.receive(is_exit, 1000)
  end
end

--- Run a program as a process linked to the caller.
-- @tparam table opts `cmd` (the program: a path, or a name looked up in PATH),
--   `args` (array of strings), `env` (name = value added to this node's
--   environment; `false` unsets), `cwd`, `stdio` ("inherit", the default, or
--   "ignore"), `kill_signal` ("sigterm"), `kill_timeout_ms` (5000: how long
--   a stop waits after `kill_signal` before SIGKILL).
-- @return pid, or nil and the reason (bad options, or the program cannot be run)
function M.start_link(opts)
  local spawn_opts, err = spawn_options(opts)
  if not spawn_opts then return nil, err end
  return server.start_link(Server, { opts, spawn_opts }, { trap_exit = true })
end

--- A child spec for `opts` (as `start_link`, plus `id` (default `cmd`),
-- `restart` and `shutdown`, which defaults to `kill_timeout_ms` + 1000 so
-- the program's own stop comes first). Used by the `{"pogo.os_process", opts}`
-- shorthand.
-- @tparam table opts
-- @treturn table
function M.child_spec(opts)
  local _, err = spawn_options(opts)
  if err then error(err, 2) end
  return {
    id = opts.id == nil and opts.cmd or opts.id,
    start = { "pogo.os_process", "start_link", opts },
    restart = opts.restart,
    shutdown = opts.shutdown or (opts.kill_timeout_ms or 5000) + 1000,
  }
end

--- The OS pid of the program run by `pid`.
-- @param pid
-- @treturn integer
function M.os_pid(pid) return pogo.call(pid, "os_pid", 5000) end

--- Send `signal` (a name such as "sighup" or "HUP", or a number) to the program.
-- @param pid
-- @param signal
-- @return true, or nil and the error
function M.signal(pid, signal)
  return table.unpack(pogo.call(pid, { "signal", signal }, 5000), 1, 2)
end

return M
