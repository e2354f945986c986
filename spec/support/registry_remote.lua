--- Functions the registry cluster specs (spec/cluster/registry_spec.lua) run on
-- other nodes with pogo.rpc. Each rpc runs in a fresh process that ends after
-- answering, so what must outlive the call is spawned here and its pid returned.
local pogo = require "pogo"
local registry = require "pogo.registry"
local server = require "pogo.server"
local uv = require "luv"

local M = {}

function M.start() return registry.info().pid end
function M.peers() return registry.info().peers end
function M.whereis(name) return registry.whereis(name) end
function M.count() return registry.info().names end
function M.unregister(name) return registry.unregister(name) end

function M.block(node, flag)
  pogo.block(node, flag)
  return true
end

--- A process that registers `name` (its result goes back as the second
-- value) and then obeys: "stop", "crash", "unregister", and {"forward", to}
-- (it sends every later message to `to`, tagged {"fwd", name, msg}).
function M.holder(name)
  local me, ref = pogo.self(), pogo.make_ref()
  local pid = pogo.spawn(function()
    local ok, why = registry.register(name)
    pogo.send(me, {ref, ok, why})
    local to
    while true do
      local m = pogo.receive()
      if m == "stop" then return end
      if m == "crash" then error("holder crashed on purpose") end
      if m == "unregister" then
        registry.unregister(name)
      elseif type(m) == "table" and m[1] == "forward" then
        to = m[2]
        pogo.send(to, {"fwd", name, "forwarding"})
      elseif to then
        pogo.send(to, {"fwd", name, m})
      end
    end
  end)
  local r = pogo.receive(function(m) return type(m) == "table" and m[1] == ref end, 5000)
  return pid, r and r[2], r and r[3]
end

--- `n` processes holding {prefix, 1} .. {prefix, n}; returns how many registered.
function M.many(prefix, n)
  local ok = 0
  for i = 1, n do
    if select(2, M.holder({prefix, i})) then ok = ok + 1 end
  end
  return ok
end

--- Whether none of {prefix, 1} .. {prefix, n} is registered here.
function M.none_of(prefix, n)
  for i = 1, n do
    if registry.whereis({prefix, i}) ~= nil then return false end
  end
  return true
end

--- A process that monitors `name` and sends `report` {"rw", tag, down, hrtime_ns}
-- when its DOWN comes; it first sends {"rw", tag, "ready"}.
function M.watcher(name, report, tag)
  return pogo.spawn(function()
    local ref = registry.monitor(name)
    pogo.send(report, {"rw", tag, "ready"})
    local m = pogo.receive(function(x) return type(x) == "table" and x[1] == "DOWN" and x[2] == ref end)
    pogo.send(report, {"rw", tag, m, uv.hrtime()})
  end)
end

--- A counter server named {"via", "pogo.registry", name} (not linked to the
-- rpc process): calls add to it and return the sum; a cast {"add", n} adds.
local Counter = {}
function Counter.init(n) return n end
function Counter.handle_call(req, _, n) return n + req, n + req end
function Counter.handle_cast(msg, n)
  if type(msg) == "table" and msg[1] == "add" then return n + msg[2] end
  return n
end

function M.counter(name, start)
  return server.start(Counter, start or 0, {name = {"via", "pogo.registry", name}})
end

--- pogo.call / pogo.cast / pogo.send through the registry from this node.
function M.call_via(name, req) return pogo.call({"via", "pogo.registry", name}, req, 2000) end
function M.cast_via(name, msg) return pogo.cast({"via", "pogo.registry", name}, msg) end
function M.send_via(name, msg)
  pogo.send({"via", "pogo.registry", name}, msg)
  return true
end

--- `n` names {tag, 1} .. {tag, n}, four to a holder process; the holders
-- are kept (`moved` registers names to them).
local holders = {}
local function idle() return pogo.spawn(function() repeat until pogo.receive() == "stop" end) end
function M.fill(tag, n)
  local p
  for i = 1, n do
    if i % 4 == 1 then
      p = idle()
      holders[#holders + 1] = p
    end
    assert(registry.register({tag, i}, p))
    if i % 1000 == 0 then pogo.sleep(0) end
  end
  return #holders
end

--- For j = 1 .. n, in a process: a new process registers {"k", j} and lets
-- it go, then the j-th holder of `fill` registers it (the name moves between
-- two local processes); "moved" goes to `report` at the end.
function M.moves(n, report)
  pogo.spawn(function()
    for j = 1, n do
      local p = idle()
      assert(registry.register({"k", j}, p))
      registry.unregister({"k", j})
      assert(registry.register({"k", j}, holders[j]))
      pogo.send(p, "stop")
      if j % 20 == 0 then pogo.sleep(0) end
    end
    pogo.send(report, "moved")
  end)
  return true
end

--- A process that monitors each of {"k", 1} .. {"k", n} once it is
-- registered, until "done"; then it sends `report` {"downs", monitors, the
-- DOWNs of a pid that still holds its name}.
function M.move_watcher(n, report)
  return pogo.spawn(function()
    local mon, count, wrong = {}, 0, {}
    while true do
      for j = 1, n do
        if not mon[j] and registry.whereis({"k", j}) then
          mon[j] = registry.monitor({"k", j})
          count = count + 1
        end
      end
      local m = pogo.receive(1)
      if m == "done" then break end
      while m do
        if type(m) == "table" and m[1] == "DOWN" and registry.whereis(m[3][3]) == m[5] then
          wrong[#wrong + 1] = tostring(m[3][3][2]) .. ": " .. tostring(m[4])
        end
        m = pogo.receive(0)
      end
    end
    pogo.send(report, {"downs", count, wrong})
  end)
end

return M
