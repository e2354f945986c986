--- A generic server process, in the manner of Erlang's gen_server.
--
-- The callback module (a table, or a `require` name) has:
--
-- * `init(arg) -> state` or `nil, reason` (start fails with reason)
-- * `handle_call(request, from, state) -> reply, state` (or `nil, state, "noreply"`
--   and later `server.reply(from, value)`; or `reply, state, "stop", reason`)
-- * `handle_cast(msg, state) -> state` (or `state, "stop", reason`)
-- * `handle_info(msg, state) -> state` (or `state, "stop", reason`)
-- * `terminate(reason, state)` (optional; called on stop, on a handler error, and
--   on an exit signal from the parent when the server traps exits)
--
-- Missing handlers: an unexpected call crashes the server, unexpected casts and
-- infos are ignored (as gen_server logs and drops them).
-- @module pogo.server
local pogo = require "pogo"
local proc_lib = require "pogo.proc_lib"
local core = pogo.core

local M = {}

local function resolve(module)
  if type(module) == "string" then
    local ok, mod = pcall(require, module)
    if not ok then return nil, "unknown module '" .. module .. "': " .. tostring(mod) end
    module = mod
  end
  if type(module) ~= "table" then return nil, "server module must be a table or a module name" end
  if type(module.init) ~= "function" then return nil, "server module has no init function" end
  return module
end

local function crash(err)
  return setmetatable({ error = err, traceback = debug.traceback(nil, 2) }, {
    __tostring = function(r) return tostring(r.error) .. "\n" .. r.traceback end,
  })
end

local function terminate(mod, reason, state)
  if mod.terminate then
    local ok, err = xpcall(mod.terminate, crash, reason, state)
    if not ok then return err end
  end
  return reason
end

local function loop(mod, state, parent)
  local handle_call, handle_cast, handle_info = mod.handle_call, mod.handle_cast, mod.handle_info
  local receive = core.receive
  while true do
    local msg = receive()
    local tag = type(msg) == "table" and msg[1]
    local ok, a, b, c, d
    if tag == "$call" then
      local from = msg[2]
      if not handle_call then
        ok, a = false, crash("handle_call is not defined for request " .. tostring(msg[3]))
      else
        ok, a, b, c, d = xpcall(handle_call, crash, msg[3], from, state)
      end
      if ok then
        state = b
        if c == "stop" then
          if a ~= nil then pogo.reply(from, a) end
          pogo.exit(terminate(mod, d == nil and "normal" or d, state))
        elseif c ~= "noreply" then
          pogo.reply(from, a)
        end
      end
    elseif tag == "$cast" then
      if handle_cast then
        ok, a, b, c = xpcall(handle_cast, crash, msg[2], state)
      else
        ok, a = true, state
      end
    elseif tag == "$stop" then
      -- server.stop: {"$stop", from, reason}
      local reason = msg[3]
      local r = terminate(mod, reason, state)
      pogo.reply(msg[2], true)
      pogo.exit(r)
    elseif tag == "EXIT" and msg[2] == parent and core.trap_exit() then
      pogo.exit(terminate(mod, msg[3], state))
    else
      if handle_info then
        ok, a, b, c = xpcall(handle_info, crash, msg, state)
      else
        ok, a = true, state
      end
    end
    if tag ~= "$call" and tag ~= "$stop" and ok then
      state = a
      if b == "stop" then pogo.exit(terminate(mod, c == nil and "normal" or c, state)) end
    end
    if not ok then
      pogo.exit(terminate(mod, a, state))
    end
  end
end

local function start(module, arg, opts, link)
  opts = opts or {}
  local mod, err = resolve(module)
  if not mod then return nil, err end
  if opts.name ~= nil then
    local existing = core.whereis(opts.name)
    if existing then return nil, "already started: " .. tostring(existing) end
  end
  local timeout = opts.timeout ~= math.huge and opts.timeout or nil
  return proc_lib.start(link, timeout, function(ack, parent)
    if opts.name ~= nil and not pcall(core.register, opts.name, pogo.self()) then
      return ack(false, "already started: " .. tostring(core.whereis(opts.name)))
    end
    if opts.trap_exit then core.trap_exit(true) end
    local ok, state, reason = xpcall(mod.init, crash, arg)
    if not ok or state == nil then
      local why = ok and (reason == nil and "init returned nil" or reason) or state
      ack(false, why)
      pogo.exit(ok and "normal" or why)
    end
    ack(true)
    return loop(mod, state, parent)
  end)
end

--- Start a server linked to the caller. Returns after `init` has returned.
-- @param module callback table or `require` name
-- @param arg passed to `init`
-- @tparam[opt] table opts `name` (register it), `trap_exit` (trap before init), `timeout` (ms for init)
-- @return pid, or nil and the reason
function M.start_link(module, arg, opts)
  return start(module, arg, opts, true)
end

--- Start a server that is not linked to the caller.
-- @see start_link
function M.start(module, arg, opts)
  return start(module, arg, opts, false)
end

--- Call a server (see `pogo.call`).
-- @function call
M.call = pogo.call

--- Cast to a server (see `pogo.cast`).
-- @function cast
M.cast = pogo.cast

--- Reply to a call from `handle_call` when it returned "noreply".
-- @function reply
M.reply = pogo.reply

--- Stop a server: it runs `terminate(reason, state)` and exits with `reason`.
-- @param server pid or name
-- @param[opt="normal"] reason
-- @tparam[opt=5000] integer timeout_ms
function M.stop(server, reason, timeout_ms)
  local timeout = timeout_ms
  reason = reason == nil and "normal" or reason
  local target = server
  if type(server) == "string" then
    target = core.whereis(server)
    if not target then error("noproc: no process registered as '" .. server .. "'", 2) end
  end
  local mref = pogo.monitor(target)
  local ref = pogo.make_ref()
  pogo.send(target, { "$stop", { pogo.self(), ref }, reason })
  local m = pogo.receive(function(x)
    return type(x) == "table" and x[1] == "DOWN" and x[2] == mref
  end, timeout or 5000)
  if not m then
    pogo.demonitor(mref)
    error("timeout: server did not stop", 2)
  end
  -- drop the acknowledgement if it arrived
  pogo.receive(function(x) return type(x) == "table" and x[1] == ref end, 0)
  return true
end

return M
