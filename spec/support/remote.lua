--- Functions that multi-node specs run on other nodes with pogo.rpc.
-- Each rpc runs in a fresh process that ends after answering, so anything
-- meant to outlive the call is spawned here and its pid returned.
local pogo = require "pogo"

local M = {}

--- An echo process: {from, value} -> from gets value back; "stop" ends it.
function M.echo(name)
  local pid = pogo.spawn(function()
    while true do
      local m = pogo.receive()
      if m == "stop" then return end
      if type(m) == "table" and m[1] == "crash" then error(m[2]) end
      if type(m) == "table" and m[1] == "exit" then pogo.exit(m[2]) end
      if type(m) == "table" and pogo.is_pid(m[1]) then pogo.send(m[1], m[2]) end
    end
  end)
  if name then pogo.register(name, pid) end
  return pid
end

--- A process that checks that numbered messages {i, ...} arrive in order
-- and, after `n` of them, sends {"order", n_in_order, first_bad} to `report`.
function M.order_checker(report, n)
  return pogo.spawn(function()
    local expect, bad = 1, nil
    for _ = 1, n do
      local m = pogo.receive()
      if m[1] ~= expect and not bad then bad = m[1] end
      expect = expect + 1
    end
    pogo.send(report, { "order", n, bad })
  end)
end

--- Send {1}, {2}, ... {n} to `to` from a fresh process (returns at once).
function M.send_numbered(to, n)
  pogo.spawn(function()
    for i = 1, n do pogo.send(to, { i }) end
  end)
  return true
end

--- A process that traps exits, links to `pid` and forwards everything it gets
-- to `report`.
function M.linker(pid, report)
  return pogo.spawn(function()
    pogo.trap_exit(true)
    pogo.link(pid)
    while true do pogo.send(report, { "linker", pogo.receive() }) end
  end)
end

--- A process that monitors `target` and forwards everything it gets to `report`.
function M.monitorer(target, report)
  return pogo.spawn(function()
    local ref = pogo.monitor(target)
    pogo.send(report, { "monitoring", ref })
    while true do pogo.send(report, { "monitorer", pogo.receive() }) end
  end)
end

--- A server (pogo.server, without init) that replies {"got", request};
-- the request "die" makes it exit with reason "died" without replying,
-- "slow" replies after 500 ms.
function M.server(name)
  local pid = pogo.spawn(require("pogo.server").enter_loop, {
    handle_call = function(req, _, s)
      if req == "die" then return nil, s, "stop", "died" end
      if req == "slow" then pogo.sleep(500) end
      return { "got", req }, s
    end,
  }, {})
  if name then pogo.register(name, pid) end
  return pid
end

--- Send `pid` `rounds` bursts of `n` strings of `size` bytes, `gap_ms` apart.
function M.flood(pid, rounds, n, size, gap_ms)
  local s = string.rep("x", size)
  for r = 1, rounds do
    for _ = 1, n do pogo.send(pid, s) end
    if r < rounds then pogo.sleep(gap_ms) end
  end
  return true
end

function M.nodes() return pogo.nodes() end
function M.info() return pogo.dist_info() end
function M.dist_stats() return pogo.core.dist_stats() end
function M.connect(addr) return pogo.connect(addr) end
function M.disconnect(node) return pogo.disconnect(node) end
function M.block(node, flag) pogo.block(node, flag) return true end
function M.alive(pid) return pogo.alive(pid) end
function M.inject(node, bytes) return pogo.core.dist_inject(node, bytes) end
function M.send(dest, msg) pogo.send(dest, msg) return true end

--- A process that, sent {"disconnect", node}, disconnects from that node and,
-- sent "leave", leaves the cluster as bin/pogo's observer does
-- (pogo.cli.leave: a disconnect from every node, then the links closed). The
-- rpc that starts it answers first: its answer would not get through after.
function M.leaver()
  return pogo.spawn(function()
    while true do
      local m = pogo.receive()
      if m == "leave" then return require("pogo.cli").leave() end
      if type(m) == "table" and m[1] == "disconnect" then pogo.disconnect(m[2]) end
    end
  end)
end

local node_events = {}

--- Subscribe a fresh process to monitor_nodes; it records the events (see
-- node_events) and forwards them to `report` (lost while disconnected).
function M.node_watcher(report)
  return pogo.spawn(function()
    pogo.monitor_nodes(true)
    pogo.send(report, { "watching" })
    while true do
      local m = pogo.receive()
      node_events[#node_events + 1] = m
      pogo.send(report, { "node_event", m })
    end
  end)
end

--- The events recorded by node_watcher so far.
function M.node_events() return node_events end

function M.sleep(ms)
  pogo.sleep(ms)
  return "slept"
end

--- Block the node's loop for `ms` (a blocking sleep: nothing is read from
-- the network), having made the file `path` just before (the sign that it
-- blocks, which the node itself can no longer send).
function M.stall(path, ms)
  local f = assert(io.open(path, "w"))
  f:close()
  require("luv").sleep(ms)
  return true
end

function M.fail(msg) error(msg, 0) end
function M.fail_table() error({ code = 42 }) end
function M.fail_function() error(function() end) end
function M.results() return 1, nil, "three", nil end
function M.nothing() end
function M.unsendable() return function() end end

--- Call a remote server by {name, node} from this node.
function M.call(dest, req, timeout)
  return pogo.call(dest, req, timeout)
end

return M
