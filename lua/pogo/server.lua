--- A generic server process, in the manner of Erlang's gen_server.
--
-- The callback module (a table, or a `require` name) has:
--
-- * `init(arg, data) -> state` or `nil, reason` (start fails with reason);
--   `data` is nil unless the server takes over a moved child (see below)
-- * `handle_call(request, from, state) -> reply, state` (or `nil, state, "noreply"`
--   and later `server.reply(from, value)`; or `reply, state, "stop", reason`)
-- * `handle_cast(msg, state) -> state` (or `state, "stop", reason`)
-- * `handle_info(msg, state) -> state` (or `state, "stop", reason`)
-- * `terminate(reason, state)` (optional; called on stop, on a handler error, and
--   on an exit signal from the parent when the server traps exits)
--
-- Two optional callbacks serve servers that act on time or on many messages at once:
--
-- * `timeout(state) -> ms | nil`: how long the server may wait for its next
--   message, computed from the state before each wait (gen_server's timeout,
--   which there each callback returns). When it passes with no message,
--   `handle_info("timeout", state)` runs. nil (or `math.huge`) waits forever.
--   Any other value that is no number of ms (a string, NaN) ends the server
--   as a handler that raised does: `terminate` gets a crash (see `is_crash`)
--   whose error names the `timeout` callback and the value.
-- * `handle_drained(state) -> state` (or `state, "stop", reason`): runs each
--   time the mailbox is empty, after `init` and after the messages that came
--   meanwhile have been handled one by one, before the server waits. A server
--   that must act on one consistent view of everything queued (the distributed
--   supervisor reconciles only after it has read every pg change) notes what
--   each message changes and acts here: drain, then act.
--
-- Two optional callbacks carry a server's state across a move (the
-- distributed supervisor's state handoff, as Swarm's):
--
-- * `handoff(state) -> data`: the server is asked to stop because its child
--   moves to another node; `data` goes to the new instance, whose `init` gets
--   it as its second argument: `init(arg, data)` (nil when nothing came).
-- * `resolve_conflict(state, data) -> state`: after a netsplit heals, the
--   copy that stops hands its `handoff` data to the copy that stays.
--
-- The loop, for each message: `"$call"` goes to `handle_call`, `"$cast"` to
-- `handle_cast`, `"$stop"` (from `stop`) ends the server, an `"EXIT"` from the
-- parent ends it when it traps exits (`opts.trap_exit`), and anything else goes
-- to `handle_info`. Two system messages serve the handoff:
--
-- * `{"$handoff", dest, key[, via]}`: run `handoff(state)` (nil without
--   one), send `{"$handoff_data", key, data, node, self, ref}` (`node`: this
--   node, `ref`: a monitor of `dest`) to `dest`, run `terminate("shutdown",
--   state)`, wait until `dest` answers `{"$handoff_ack", ref}` (or is gone,
--   or 5 s passed), and exit "shutdown": the next instance, which starts
--   once this one has exited, finds the data where it starts, even when
--   `dest` had to pass it on (its node was stopping too). When `dest` is
--   gone before it answered and `via` is given (the supervisor of a node
--   that stops), the data goes to `via` instead, as
--   `{"$handoff_data", key, data, node, self, ref, {dest's node}}`, and the
--   server waits for its answer in the same 5 s. Data that cannot
--   be serialized is logged and nil is sent;
--   a `handoff` that raises is logged, nil is sent, and the server ends with
--   the error, as after any handler.
-- * `{"$resolve_conflict", data}`: `state = resolve_conflict(state, data)`
--   (ignored without one).
-- * `{"$name_conflict", winner, reason}` (from `pogo.registry`, to a server
--   registered under a `{"via", "pogo.registry", name}` name whose module has
--   `handoff` or `resolve_conflict`, when a healed netsplit gives its name to
--   `winner`): run `handoff(state)`, send `{"$resolve_conflict", data}` to
--   `winner`, then stop with `reason` (`{"name_conflict", name}`), so a
--   named distributed child merges its state as an unnamed one does.
--
-- The data reaches `init` through the process that starts the new instance:
-- it runs the child's start function inside `handing_over(data, fn)`, and the
-- first server that start function starts gets `data`.
--
-- Missing handlers: an unexpected call crashes the server, unexpected casts
-- and infos are ignored (as gen_server logs and drops them).
-- A handler that raises ends the server: `terminate` gets the error as its
-- reason (see `is_crash`) and the server exits with it.
-- @module pogo.server
local pogo = require "pogo"
local proc_lib = require "pogo.proc_lib"
local log = require("pogo.log").with { module = "pogo.server" }
local core = pogo.core

local M = {}

-- coroutine of a process inside handing_over -> {data =, taken =, capable =
-- {pid -> true}} (weak: an entry goes with its process)
local handing = setmetatable({}, { __mode = "k" })

local function resolve(module)
  if type(module) == "string" then
    local ok, mod = pcall(require, module)
    if not ok then return nil, "unknown module '" .. module .. "': " .. tostring(mod) end
    module = mod
  end
  if type(module) ~= "table" then return nil, "server module must be a table or a module name" end
  return module
end

-- The exit reason of a handler that raised: the error and its traceback.
local CRASH = { __tostring = function(r) return tostring(r.error) .. "\n" .. r.traceback end }

local function crash(err)
  return setmetatable({ error = err, traceback = debug.traceback(nil, 2) }, CRASH)
end

--- Whether `reason` is the crash of a server's handler (a table `{error =,
-- traceback =}`), as `terminate` gets it after a handler raised, rather than
-- a reason given to a stop: lets `terminate` tell a crash from a stop.
-- @param reason
-- @treturn boolean
function M.is_crash(reason)
  return getmetatable(reason) == CRASH
end

-- A handler that ran out of memory raised Lua's "not enough memory" (no
-- message handler runs for memory errors): the server exits "out of
-- memory", as a process does.
local function failed(err)
  if err == "not enough memory" then return "out of memory" end
  return err
end

local function terminate(mod, reason, state)
  if mod.terminate then
    local ok, err = xpcall(mod.terminate, crash, reason, state)
    if not ok then return err end
  end
  return reason
end

-- What a handler other than handle_call gave when it raised or returned more
-- than a state: the end, or the next state.
local function next_state(mod, state, ok, a, b, c)
  if not ok then pogo.exit(terminate(mod, failed(a), state)) end
  if b == "stop" then pogo.exit(terminate(mod, c == nil and "normal" or c, a)) end
  return a
end

-- How long a server that handed its data over waits for its destination's
-- answer, at most (its supervisor bounds it too, by the child's shutdown time).
local HANDOFF_ACK_MS = 5000

-- Send handoff data to `dest` with a monitor of it: the monitor's ref, or
-- nil (the send failed).
local function send_data(dest, key, data, visited)
  local ack = pogo.monitor(dest)
  local sent, err = pcall(core.send, dest, { "$handoff_data", key, data, pogo.node(), pogo.self(), ack, visited })
  if not sent then
    -- (too big for a frame, say: the next instance starts with nil)
    log.error("handoff data cannot be sent to %s, nil is handed over: %s", tostring(dest), tostring(err))
    pogo.demonitor(ack)
    return nil
  end
  return ack
end

-- {"$handoff", dest, key[, via]}: hand the state's data to `dest` and stop
-- (see the module text); with `rival` (a "$name_conflict"), the data goes to
-- the rival as {"$resolve_conflict", data} and the server stops with `why`.
-- Never returns.
local function hand_off(mod, state, dest, key, rival, why, via)
  local data, reason = nil, why or "shutdown"
  if mod.handoff then
    local ok, d = xpcall(mod.handoff, crash, state)
    if ok then
      data = d
    else
      reason = failed(d)
      log.error("handoff raised, nil is handed over: %s", tostring(reason))
    end
  end
  if data ~= nil then
    local ok, err = pcall(core.encode, data)
    if not ok then
      log.error("handoff data cannot be serialized, nil is handed over: %s", tostring(err))
      data = nil
    end
  end
  local ack -- the monitor of `dest`, whose answer this server waits for before it exits
  if rival ~= nil then
    if data ~= nil and pogo.is_pid(rival) then
      local sent, err = pcall(core.send, rival, { "$resolve_conflict", data })
      if not sent then log.error("handoff data cannot be sent to %s: %s", tostring(rival), tostring(err)) end
    end
  elseif pogo.is_pid(dest) then
    ack = send_data(dest, key, data)
  end
  local r = terminate(mod, reason, state)
  local until_ms = pogo.now() + HANDOFF_ACK_MS
  while ack do
    -- the next instance starts once this one has gone: go once `dest` has the
    -- data (or is gone itself), so it cannot start without it
    local m = pogo.receive(function(x)
      return type(x) == "table" and (x[1] == "$handoff_ack" or x[1] == "DOWN") and x[2] == ack
    end, math.max(0, until_ms - pogo.now()))
    pogo.demonitor(ack) -- (after a DOWN it has nothing left to do)
    ack = nil
    if m and m[1] == "DOWN" and data ~= nil and pogo.is_pid(via) then
      -- `dest` went before it answered (its node stopped too, and had gone
      -- through its stop before this data came): the supervisor that asked,
      -- stopping itself, passes the data on to an owner that stays
      ack = send_data(via, key, data, { pogo.node_of(dest) })
      via = nil
    end
  end
  pogo.exit(r)
end

local type, xpcall = type, xpcall
local math_type, huge, ceil, tointeger = math.type, math.huge, math.ceil, math.tointeger

-- A timeout callback's value as core.receive takes it: true and integer ms,
-- or true and nil (forever: nil, math.huge, or more ms than an integer
-- holds); false for a value that is no number of ms (a string, NaN).
local function wait_ms(ms)
  if math_type(ms) == "integer" then return true, ms > 0 and ms or 0 end
  if ms == nil or ms == huge then return true, nil end
  if type(ms) ~= "number" or ms ~= ms then return false end
  if ms <= 0 then return true, 0 end
  return true, tointeger(ceil(ms))
end

-- The crash reason of a timeout callback that returned `ms`, no number of ms.
local function bad_timeout(ms)
  local ok, shown = pcall(tostring, ms) -- (a table's __tostring may raise)
  if type(ms) == "string" then shown = string.format("%q", ms) elseif not ok then shown = "?" end
  return crash("timeout callback returned " .. shown .. " (" .. type(ms) .. "), not a number of ms or nil")
end

local function loop(mod, state, parent)
  local handle_call, handle_cast, handle_info = mod.handle_call, mod.handle_cast, mod.handle_info
  local handle_drained, timeout = mod.handle_drained, mod.timeout
  local waits = handle_drained ~= nil or timeout ~= nil
  local receive, mbox_len, send = core.receive, core.mbox_len, core.send
  while true do
    local msg
    if waits and mbox_len() == 0 then
      if handle_drained then
        local ok, a, b, c = xpcall(handle_drained, crash, state)
        if ok and b == nil then state = a else state = next_state(mod, state, ok, a, b, c) end
      end
      if timeout then
        local ok, ms = xpcall(timeout, crash, state)
        if not ok then pogo.exit(terminate(mod, failed(ms), state)) end
        local valid, wait = wait_ms(ms)
        if not valid then pogo.exit(terminate(mod, bad_timeout(ms), state)) end
        ms = wait
        msg = receive(ms)
        if msg == nil and ms ~= nil then msg = "timeout" end
      else
        msg = receive()
      end
    else
      msg = receive()
    end
    local tag = type(msg) == "table" and msg[1]
    -- a "$call" whose `from` cannot be answered is no call: it is an info
    if tag == "$call" and type(msg[2]) == "table" then
      local from = msg[2]
      local ok, a, b, c, d
      if not handle_call then
        ok, a = false, crash("handle_call is not defined for request " .. tostring(msg[3]))
      else
        ok, a, b, c, d = xpcall(handle_call, crash, msg[3], from, state)
      end
      if not ok then pogo.exit(terminate(mod, failed(a), state)) end
      state = b
      if c == "stop" then
        if a ~= nil then pogo.reply(from, a) end
        pogo.exit(terminate(mod, d == nil and "normal" or d, state))
      elseif c ~= "noreply" then
        send(from[1], { from[2], a }) -- pogo.reply, inline: the hot path
      end
    elseif tag == "$cast" then
      if handle_cast then
        local ok, a, b, c = xpcall(handle_cast, crash, msg[2], state)
        if ok and b == nil then state = a else state = next_state(mod, state, ok, a, b, c) end
      end
    elseif tag == "$stop" then
      -- server.stop: {"$stop", from, reason}
      local r = terminate(mod, msg[3], state)
      pcall(pogo.reply, msg[2], true)
      pogo.exit(r)
    elseif tag == "$handoff" then
      hand_off(mod, state, msg[2], msg[3], nil, nil, msg[4])
    elseif tag == "$name_conflict" then
      hand_off(mod, state, nil, nil, msg[2], msg[3])
    elseif tag == "$resolve_conflict" then
      if mod.resolve_conflict then
        local ok, a, b, c = xpcall(mod.resolve_conflict, crash, state, msg[2])
        if ok and b == nil then state = a else state = next_state(mod, state, ok, a, b, c) end
      end
    elseif tag == "EXIT" and msg[2] == parent and core.trap_exit() then
      pogo.exit(terminate(mod, msg[3], state))
    elseif handle_info then
      local ok, a, b, c = xpcall(handle_info, crash, msg, state)
      if ok and b == nil then state = a else state = next_state(mod, state, ok, a, b, c) end
    end
  end
end

-- The `name` option: a local name, or {"via", module, name} (registered with
-- module.register, looked up as pogo.send does).
local function whereis_name(name)
  if core.is_via(name) then return core.via_whereis(name) end
  return core.whereis(name)
end

-- `hands_off`: the module has `handoff` or `resolve_conflict`; a via module
-- with `hands_off(pid)` (pogo.registry) is told, so that it asks the server
-- to hand its state over when the name goes to another process.
local function register_name(name, hands_off)
  if core.is_via(name) then
    local via = require(name[2])
    if via.register(name[3], pogo.self()) ~= true then return false end
    if hands_off and type(via.hands_off) == "function" then via.hands_off(pogo.self()) end
    return true
  end
  return pcall(core.register, name, pogo.self())
end

-- Bad options are a programming error, raised at the caller of start_link or
-- start (level 3 from here: start_link and start tail-call `start`): opts a
-- table, its `name` a string or {"via", module, name} with a name.
local function check_opts(opts)
  if type(opts) ~= "table" then error("pogo.server: opts must be a table, got " .. type(opts), 3) end
  local name = opts.name
  if name == nil or type(name) == "string" or core.is_via(name) then return end
  if type(name) == "table" and name[1] == "via" then
    error("pogo.server: opts.name {\"via\", module, name} has no name (nil)", 3)
  end
  error("pogo.server: opts.name must be a string or {\"via\", module, name}, got " .. type(name), 3)
end

local function start(module, arg, opts, link)
  if opts == nil then opts = {} else check_opts(opts) end
  local mod, err = resolve(module)
  if not mod then return nil, err end
  if type(mod.init) ~= "function" then return nil, "server module has no init function" end
  if opts.name ~= nil then
    local existing = whereis_name(opts.name)
    if existing then return nil, "already started: " .. tostring(existing) end
  end
  local timeout = opts.timeout ~= math.huge and opts.timeout or nil
  local h = handing[coroutine.running()]
  local data
  if h and not h.taken then h.taken, data = true, h.data end
  local pid, why = proc_lib.start(link, timeout, function(ack, parent)
    if opts.name ~= nil and not register_name(opts.name, (mod.handoff or mod.resolve_conflict) ~= nil) then
      return ack(false, "already started: " .. tostring(whereis_name(opts.name)))
    end
    if opts.trap_exit then core.trap_exit(true) end
    local ok, state, reason = xpcall(mod.init, crash, arg, data)
    if not ok or state == nil then
      local why = ok and (reason == nil and "init returned nil" or reason) or state
      ack(false, why)
      pogo.exit(ok and "normal" or why)
    end
    ack(true)
    return loop(mod, state, parent)
  end)
  if pid and h and (mod.handoff or mod.resolve_conflict) then h.capable[pid] = true end
  return pid, why
end

--- Run `fn(...)`, a child's start function, handing `data` over: the first
-- server it starts (from this process) gets `data` as the second argument of
-- its `init`. Used by the distributed supervisor to start a child that moved.
-- @param data the old instance's `handoff` data (nil: none)
-- @tparam function fn
-- @return what `fn` returns (a pid, or nil and a reason), then whether that
--  pid is a server started here whose module has `handoff` or
--  `resolve_conflict` (so it understands `"$handoff"` and `"$resolve_conflict"`)
function M.handing_over(data, fn, ...)
  local co = coroutine.running()
  local h = { data = data, capable = {} }
  handing[co] = h
  local ok, pid, err = pcall(fn, ...)
  handing[co] = nil
  if not ok then error(pid, 0) end
  return pid, err, pid ~= nil and h.capable[pid] == true
end

--- Start a server linked to the caller. Returns after `init` has returned.
-- @param module callback table or `require` name
-- @param arg passed to `init`
-- @tparam[opt] table opts `name` (register it: a local name, or `{"via",
--  module, name}` such as `{"via", "pogo.registry", name}` for a cluster-wide
--  name), `trap_exit` (trap before init), `timeout` (ms for init); opts that
--  is not a table, or a bad `name`, raises
-- @return pid, or nil and the reason
function M.start_link(module, arg, opts)
  return start(module, arg, opts, true)
end

--- Start a server that is not linked to the caller.
-- @see start_link
function M.start(module, arg, opts)
  return start(module, arg, opts, false)
end

--- Make the calling process a server with `state`, without `init` (gen_server's
-- `enter_loop`): for a process spawned without waiting for it to start, such
-- as a node service. It has no parent. Never returns.
-- @param module callback table or `require` name (it needs no `init`)
-- @param state the initial state
function M.enter_loop(module, state)
  local mod, err = resolve(module)
  if not mod then error("pogo.server.enter_loop: " .. err, 2) end
  return loop(mod, state, nil)
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
