--- Lua evaluated on a node for a remote tool: `bin/pogo eval NODE CODE`
-- (`eval`, one chunk in a fresh process) and `bin/pogo remote NODE` (`open`:
-- a console session, as `iex --remsh`).
--
-- A chunk is compiled as an expression first (`return <code>`, as the Lua
-- REPL does), then as statements. It runs in a process of the node, so it
-- may block, call and receive. Its globals live in an environment of its
-- own whose misses fall back to `_G` (`pogo` is defined): in a session they
-- persist from one chunk to the next, as in a console. `print` writes to
-- the tool, not to the node's stdout.
--
-- The results are made readable here, on the node that has them (pids,
-- functions and tables with cycles cannot all cross the wire): `text`, one
-- string per result (tables pretty-printed by Penlight's `pl.pretty`), and
-- `json`, the same values reduced to what JSON can hold (tables keep their
-- shape, with string keys; anything else becomes its text).
--
-- A session is a `pogo.server` of the node that monitors the tool's process:
-- when the tool goes (it quits, or its node goes), the session ends, even
-- while a chunk still runs in it (a watchdog process kills it then). A chunk
-- that runs past the tool's `--call-timeout-ms` is ended by the tool, which
-- kills the session and opens a fresh one (its globals are lost).
-- @module pogo.observer.console
local pogo = require "pogo"
local pretty = require "pl.pretty"
local server = require "pogo.server"

local M = {}

local MAX_TEXT = 1024 * 1024 -- a result's text is cut there

--- A value as readable text.
-- @param v
-- @treturn string
function M.text(v)
  local s
  if type(v) == "table" then
    local ok, out = pcall(pretty.write, v)
    s = ok and out or tostring(v)
  elseif type(v) == "string" then
    s = string.format("%q", v)
  else
    s = tostring(v)
  end
  if #s > MAX_TEXT then s = s:sub(1, MAX_TEXT) .. "\n... (cut at " .. MAX_TEXT .. " bytes)" end
  return s
end

--- A value reduced to what JSON holds: strings, finite numbers, booleans,
-- arrays (keys 1..n) and objects (other keys made text); anything else
-- (pids, functions, cycles, nesting past 32 levels) becomes its text.
-- @param v
-- @return the value for cjson
function M.jsonable(v, seen, depth)
  local t = type(v)
  if t == "string" or t == "boolean" then return v end
  if t == "number" then
    if v ~= v or v == math.huge or v == -math.huge then return tostring(v) end
    return v
  end
  if t ~= "table" then return tostring(v) end
  seen, depth = seen or {}, depth or 0
  if seen[v] or depth >= 32 then return "<cycle>" end
  seen[v] = true
  local n, count = #v, 0
  for _ in pairs(v) do count = count + 1 end
  local out = {}
  if count == n and n > 0 then
    for i = 1, n do out[i] = M.jsonable(v[i], seen, depth + 1) end
  else
    for k, x in pairs(v) do out[tostring(k)] = M.jsonable(x, seen, depth + 1) end
  end
  seen[v] = nil
  return out
end

local function new_env()
  local env = setmetatable({}, { __index = _G })
  env.pogo = pogo
  return env
end

--- Run chunk `code` in environment `env` (compiled as an expression first).
-- @tparam string code
-- @tparam table env
-- @treturn table `{ok =, n =, text = {...}, json = {...}, output = "printed
--  text", error = "message" (when not ok)}`
function M.run(code, env)
  if type(code) ~= "string" then return { ok = false, error = "code must be a string", output = "" } end
  local out = {}
  env.print = function(...)
    local parts = table.pack(...)
    for i = 1, parts.n do parts[i] = tostring(parts[i]) end
    out[#out + 1] = table.concat(parts, "\t", 1, parts.n) .. "\n"
  end
  local f = load("return " .. code, "=remote", "t", env)
  local err
  if not f then f, err = load(code, "=remote", "t", env) end
  if not f then return { ok = false, error = err, output = "" } end
  local res = table.pack(xpcall(f, function(e)
    local tb = debug.traceback(type(e) == "string" and e or M.text(e), 2)
    return (tb:gsub("\n\t%[C%]: in function 'xpcall'.*$", "")) -- the frames of the chunk only
  end))
  local r = { ok = res[1], output = table.concat(out) }
  if not res[1] then
    r.error = tostring(res[2])
    return r
  end
  r.n, r.text, r.json = res.n - 1, {}, {}
  for i = 2, res.n do
    r.text[i - 1] = M.text(res[i])
    r.json[i - 1] = res[i] == nil and "nil" or M.jsonable(res[i])
  end
  return r
end

--- Evaluate `code` once, in a fresh environment (`bin/pogo eval`; asked by rpc).
-- @tparam string code
-- @treturn table as `run`
function M.eval(code)
  return M.run(code, new_env())
end

-- The session: a pogo.server that answers {"eval", code} calls (any other
-- request: {nil, "unknown request"}, as the project's servers answer), and
-- stops when its tool's process goes.
local Session = {}

-- The session's watchdog: a process of its own, so that a session busy with
-- a chunk (one that spins, or waits for ever) still ends when its owner goes:
-- it kills the session then (a chunk may trap exits). It ends with the session.
local function watch(session, owner)
  local sref, oref = pogo.monitor(session), pogo.monitor(owner)
  local m = pogo.receive(function(msg)
    return type(msg) == "table" and msg[1] == "DOWN" and (msg[2] == sref or msg[2] == oref)
  end)
  if m[2] == oref then pogo.exit(session, "kill") end
end

function Session.init(owner)
  local me = pogo.self()
  pogo.spawn(function() watch(me, owner) end)
  return { env = new_env(), ref = pogo.monitor(owner) }
end

function Session.handle_call(req, _, st)
  if type(req) == "table" and req[1] == "eval" then return M.run(req[2], st.env), st end
  return { nil, "unknown request" }, st
end

function Session.handle_info(msg, st)
  if type(msg) == "table" and msg[1] == "DOWN" and msg[2] == st.ref then return st, "stop", "normal" end
  return st
end

--- Open a console session for the process `owner` (a tool's process on
-- another node; asked by rpc): a `pogo.server`, not linked to the caller, to
-- `pogo.call` with `{"eval", code}` (the reply is `run`'s table; any other
-- request gets `{nil, "unknown request"}`) and to stop with `server.stop`.
-- It ends when `owner` goes, even in the middle of a chunk (it is killed
-- then); the tool kills it (`pogo.exit(pid, "kill")`) to end a chunk that
-- runs too long.
-- @param owner pid
-- @return pid, or nil and the reason
function M.open(owner)
  if not pogo.is_pid(owner) then error("console.open: pid expected", 2) end
  return server.start(Session, owner)
end

return M
