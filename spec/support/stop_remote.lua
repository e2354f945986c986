--- Children and supervisors of the orderly-stop specs (spec/shutdown_spec.lua,
-- spec/cluster/stop_spec.lua, and the node script spec/support/stop_node.lua).
--
-- A *reporter* is a pogo.server child that tells a process (a pid, or a
-- registered name and node) `{"started", node, id, ns}` once its init is done
-- and `{"terminated", node, id, reason, ns}` at the end of its `terminate`
-- (`ns`: uv.hrtime(), a clock all the processes of one machine share). A
-- reporter given `slow_ms` takes that long to terminate.
local pogo = require "pogo"
local uv = require "luv"
local server = require "pogo.server"
local supervisor = require "pogo.supervisor"
local dsup = require "pogo.dynamic_supervisor"

local M = {}

local Reporter = {}

function Reporter.init(arg)
  pogo.send(arg.to, { "started", pogo.node(), arg.id, uv.hrtime() })
  return arg
end

function Reporter.handle_info(_, st) return st end

-- A reporter given `calls` calls its supervisor "dstop" in its terminate
-- (see calling_spec).
local function call_own_supervisor(st)
  local t0 = uv.hrtime()
  local function try(f, ...)
    local out = table.pack(pcall(f, ...))
    if not out[1] then return { "raised", tostring(out[2]) } end
    return { table.unpack(out, 2, out.n) }
  end
  local r = {
    which = try(function() return type(dsup.which_children("dstop", "global")) end),
    count = try(function() return type(dsup.count_children("dstop", "global").specs) end),
    whereis = try(function() return dsup.whereis("dstop", st.id) == pogo.self() end),
    nodes = try(function() return #dsup.nodes("dstop") end),
    start = try(dsup.start_child, "dstop", M.spec(st.id .. "+", st.to)),
    terminate = try(dsup.terminate_child, "dstop", st.id),
  }
  r.ms = (uv.hrtime() - t0) / 1e6
  pogo.send(st.to, { "calls", pogo.node(), st.id, r })
end

function Reporter.terminate(reason, st)
  if st.slow_ms then pogo.sleep(st.slow_ms) end
  if st.calls then call_own_supervisor(st) end
  if st.stop_in_terminate then pogo.send(st.to, { "stop_returned", st.id, pogo.stop(5000) }) end
  pogo.send(st.to, { "terminated", pogo.node(), st.id, tostring(reason), uv.hrtime() })
end

--- Start a reporter (a child's start function).
-- @tparam table arg `{id =, to =, slow_ms =}`: its id, where it reports, how
--  long it takes to terminate
function M.reporter(arg)
  return server.start_link(Reporter, arg, { trap_exit = true })
end

--- The child spec of reporter `id`, reporting to `to`.
function M.spec(id, to, slow_ms)
  return { id = id, start = { "support.stop_remote", "reporter", { id = id, to = to, slow_ms = slow_ms } } }
end

--- The child spec of a reporter whose `terminate` calls its supervisor
-- "dstop" (which_children, count_children, whereis, nodes, start_child of
-- `id .. "+"`, terminate_child of itself) and tells `to`
-- `{"calls", node, id, {which =, count =, whereis =, nodes =, start =,
-- terminate = (each the list of what the call returned), ms =}}`.
function M.calling_spec(id, to)
  return { id = id, start = { "support.stop_remote", "reporter", { id = id, to = to, calls = true } } }
end

--- A program that writes "TERM" into `marker` when it gets SIGTERM, then exits.
function M.program_spec(marker)
  return { "pogo.os_process", { id = "program", cmd = "sh", stdio = "ignore",
    args = { "-c", "trap 'echo TERM > " .. marker .. "; exit 0' TERM; while :; do sleep 0.02; done" } } }
end

--- The child spec of a reporter whose `terminate` calls `pogo.stop` and then
-- tells `to` `{"stop_returned", id, what pogo.stop returned}`.
function M.stopper_spec(id, to)
  return { id = id, start = { "support.stop_remote", "reporter", { id = id, to = to, stop_in_terminate = true } } }
end

--- A child that ignores its shutdown signal (killed only at its shutdown
-- time, here a minute).
function M.stubborn_spec()
  return { id = "stubborn", start = { "support.worker", "start_link", false, { trap = true, ignore_shutdown = true } },
    shutdown = 60000 }
end

-- ---- on a bin/pogo node (spec/support/stop_node.lua) ----

local function events_of(node) return { "stop_events", node } end

--- The node's local tree: reporters l1, [the program,] l2, [stubborn,] l3
-- under the supervisor "local_top".
function M.start_local(events_node, opts)
  local to = events_of(events_node)
  local children = { M.spec("l1", to) }
  if opts.marker then children[#children + 1] = M.program_spec(opts.marker) end
  children[#children + 1] = M.spec("l2", to)
  if opts.stubborn then children[#children + 1] = M.stubborn_spec() end
  children[#children + 1] = M.spec("l3", to)
  return assert(supervisor.start_link(children, { name = "local_top" }))
end

--- The node's distributed supervisor "dstop" (its scope too).
function M.start_dsup()
  return assert(dsup.start_link { name = "dstop", settle_ms = 300 })
end

--- Forward this node's nodedown messages to the events node as
-- {"nodedown", this node, node, reason}.
function M.watch_nodes(events_node)
  pogo.spawn(function()
    pogo.monitor_nodes(true)
    while true do
      local m = pogo.receive()
      if type(m) == "table" and m[1] == "nodedown" then
        pogo.send(events_of(events_node), { "nodedown", pogo.node(), m[2], m[3] })
      end
    end
  end)
end

--- rpc: request reporter children `ids` of "dstop", reporting to the events
-- node (taking `slow_ms` to terminate, if given).
function M.request(events_node, ids, slow_ms)
  for _, id in ipairs(ids) do
    local ok, err = dsup.start_child("dstop", M.spec(id, events_of(events_node), slow_ms))
    if not ok then error(err) end
  end
  return true
end

--- rpc: request a reporter child `id` of "dstop" that calls its supervisor
-- in its terminate (calling_spec).
function M.request_calling(events_node, id)
  return assert(dsup.start_child("dstop", M.calling_spec(id, events_of(events_node))))
end

--- rpc: the owner of `id` in "dstop".
function M.node_for(id) return dsup.node_for("dstop", id) end

--- rpc: the node where child `id` of "dstop" runs (nil: nowhere), and
-- whether this node holds a request for it (only a node's keeper joins the
-- spec groups `{"spec", uid, spec}`).
function M.where(id)
  local pid = dsup.whereis("dstop", id)
  local held = false
  for _, group in ipairs(require("pogo.pg").which_local_groups("dstop")) do
    if type(group) == "table" and group[1] == "spec" and group[3].id == id then held = true end
  end
  return pid and pogo.node_of(pid), held
end

--- rpc: the nodes of the ring of "dstop".
function M.nodes() return dsup.nodes("dstop") end

return M
