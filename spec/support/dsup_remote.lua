--- Functions the distributed-supervisor cluster specs run on nodes with pogo.rpc.
local pogo = require "pogo"
local dsup = require "pogo.dynamic_supervisor"
local pg = require "pogo.pg"

local M = {}

local SUP = "dsup"

--- The spec of worker n (id {"worker", n}).
function M.worker_spec(n)
  return { id = { "worker", n }, start = { "support.worker", "start_link" } }
end

function M.start_child(n) return dsup.start_child(SUP, M.worker_spec(n)) end
function M.start_children(from, to)
  for n = from, to do assert(dsup.start_child(SUP, M.worker_spec(n))) end
  return true
end
function M.terminate_child(n) return dsup.terminate_child(SUP, { "worker", n }) end

--- Sorted worker numbers of which_children(mode), and their pids.
function M.children(mode)
  local ns, pids = {}, {}
  for _, c in ipairs(dsup.which_children(SUP, mode)) do
    if type(c.pid) ~= "string" then
      ns[#ns + 1] = c.id[2]
      pids[c.id[2]] = c.pid
    end
  end
  table.sort(ns)
  return ns, pids
end

--- Sorted worker numbers of every request this node knows (running or not).
function M.known_specs()
  local ns = {}
  for _, spec in ipairs(dsup.specs(SUP)) do ns[#ns + 1] = spec.id[2] end
  table.sort(ns)
  return ns
end

--- This node's local entries as {id, pid-or-status, error} (failures included).
function M.local_entries()
  local out = {}
  for _, c in ipairs(dsup.which_children(SUP, "local")) do out[#out + 1] = { c.id, c.pid, c.error } end
  return out
end

--- Request a child whose module exists only on nodes started with it.
function M.start_only_here(id)
  return dsup.start_child(SUP, { id = id, start = { "support.only_here", "start_link" } })
end

--- Request an OS process child (`sleep 30`) through the pogo.os_process shorthand.
function M.start_os_child(id)
  return dsup.start_child(SUP, { "pogo.os_process", { id = id, cmd = "sleep", args = { "30" } } })
end

function M.terminate_id(id) return dsup.terminate_child(SUP, id) end

--- The node and the OS pid of the program run by child `id`, or nil.
function M.os_child(id)
  local pid = dsup.whereis(SUP, id)
  if not pogo.is_pid(pid) then return nil end
  local ok, ospid = pcall(require("pogo.os_process").os_pid, pid)
  if not ok then return nil end
  return { pogo.node_of(pid), ospid }
end

--- dsup.call on worker n (the worker answers {"ping", from}... through pogo.call: the
-- echo server fixture is used instead, id {"echo", n}).
function M.start_echo(n)
  return dsup.start_child(SUP, { id = { "echo", n }, start = { "support.echo_server", "start_link" } })
end
function M.call_echo(n, v) return dsup.call(SUP, { "echo", n }, v, 2000) end
function M.global_count() return dsup.count_children(SUP, "global") end

function M.node_for(n) return dsup.node_for(SUP, { "worker", n }) end
function M.node_for_id(id) return dsup.node_for(SUP, id) end
function M.nodes() return dsup.nodes(SUP) end
function M.whereis(n) return dsup.whereis(SUP, { "worker", n }) end
function M.alive(pid) return pogo.alive(pid) end
function M.kill_supervisor() return pogo.exit(pogo.whereis(SUP), "kill") end
function M.supervisor() return pogo.whereis(SUP) end

--- The pg state of the scope: array of {group, {member nodes...}}.
function M.pg_state()
  local out = {}
  for _, g in ipairs(pg.which_groups("test")) do
    local nodes = {}
    for _, pid in ipairs(pg.get_members("test", g)) do nodes[#nodes + 1] = pogo.node_of(pid) end
    table.sort(nodes)
    out[#out + 1] = { g, nodes }
  end
  return out
end

return M
