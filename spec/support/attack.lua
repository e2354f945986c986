--- What the attack specs (spec/cluster/attack_spec.lua) run on their nodes
-- with pogo.rpc: the attacks themselves, and the node's health (rpc answer,
-- memory, children). spec/support/attack_node.lua starts the children.
local pogo = require "pogo"
local server = require "pogo.server"
local supervisor = require "pogo.supervisor"

local M = {}

-- ---- the node's children (under the supervisor registered as "sup") ----

--- A server that does nothing but answer (a child that must survive attacks).
M.Worker = {
  init = function(arg) return arg or {} end,
  handle_call = function(req, _, s) return req, s end,
}

--- A server that, asked {"alloc"}, allocates without bound (it dies "out of
-- memory" under max_memory, and its supervisor restarts it).
M.Hog = {
  init = function() return {} end,
  handle_call = function(req, _, s)
    if req == "alloc" then
      local t, i = {}, 0 -- luacheck: ignore 241 (only grown)
      while true do -- (it grows until memory runs out)
        i = i + 1
        t[i] = { i, i * 2, i * 3 }
      end
    end
    return req, s
  end,
}

--- A server registered as "sink": it counts the messages it gets (their
-- kind and, for tables, size), for messages sent from other nodes.
M.Sink = {
  init = function() return { n = 0 } end,
  handle_call = function(req, _, s)
    if req == "count" then return { s.n, s.last }, s end
    return nil, s
  end,
  handle_info = function(msg, s)
    s.n = s.n + 1
    local size = 0
    if type(msg) == "table" then for _ in pairs(msg) do size = size + 1 end end
    s.last = size
    return s
  end,
}

function M.start_worker(mod, name)
  return server.start_link(M[mod], nil, { name = name })
end

--- The supervisor of the attack node's children (run by attack_node.lua).
function M.start_children()
  local sup = assert(supervisor.start_link({
    { id = "worker", start = { "support.attack", "start_worker", "Worker" } },
    { id = "hog", start = { "support.attack", "start_worker", "Hog", "hog" } },
    { id = "sink", start = { "support.attack", "start_worker", "Sink", "sink" } },
  }, { strategy = "one_for_one", intensity = 10, period_ms = 1000, name = "sup" }))
  return sup
end

-- ---- health ----

function M.ping() return pogo.node() end

--- The Lua heap after collecting until it stops shrinking (the string table
-- and other internal arrays shrink by halves, one collection at a time).
function M.memory()
  local last = math.huge
  for _ = 1, 30 do
    pogo.sleep(0) -- between collections the node serves its links (heartbeats): a big heap takes a while under ASan
    collectgarbage("collect")
    local now = pogo.memory().total
    if now >= last * 0.999 then return now end
    last = now
  end
  return last
end

--- The supervisor's children: {id = pid} (pids as strings).
function M.children()
  local out = {}
  for _, c in ipairs(supervisor.which_children("sup")) do out[c[1]] = tostring(c[2]) end
  return out
end

function M.processes() return #pogo.processes() end

function M.info() return pogo.memory() end

function M.sink_count() return pogo.call("sink", "count", 1000) end

-- ---- attacks ----

--- A busy loop (run as an rpc: its worker spins until it is killed).
function M.spin()
  local x = 0
  while true do x = x + 1 end
end

--- A process that spins forever; returns its pid.
function M.start_spinner()
  return pogo.spawn(M.spin)
end

--- Allocate without bound (as an rpc, in the rpc worker).
function M.alloc_forever()
  local t, i = {}, 0 -- luacheck: ignore 241 (only grown)
  while true do -- (it grows until memory runs out)
    i = i + 1
    t[i] = { i }
  end
end

--- Ask the "hog" child to allocate without bound (it dies).
function M.hog()
  local ok, err = pcall(pogo.call, "hog", "alloc", 10000)
  return ok, tostring(err)
end

--- A process holding about `mb` MB of Lua heap until told "release"; its pid.
function M.hold(mb)
  local me = pogo.self()
  local pid = pogo.spawn(function()
    local keep = {} -- luacheck: ignore 241 (only held)
    for i = 1, mb * 1024 * 1024 // 88 do keep[i] = { i } end -- (88 bytes each: a table, a slot)
    pogo.send(me, "holding")
    pogo.receive()
    keep = nil -- luacheck: ignore
  end)
  pogo.receive(function(m) return m == "holding" end, 30000)
  return pid
end

--- Build a map of n entries and send it to "sink" on `node`; returns
-- whether the send went, its error, and the ms the send itself took.
function M.big_send(node, n)
  local t = {}
  for i = 1, n do t["k" .. i] = i end
  local now = require("luv").hrtime
  local t0 = now()
  local ok, err = pcall(pogo.send, { "sink", node }, t)
  return ok, err and tostring(err), (now() - t0) / 1e6
end

--- Run `fn` (a function name of this module) in a process that makes an rpc
-- to `node` and waits for it: the caller to kill. Returns its pid.
function M.rpc_caller(node, fn, timeout)
  return pogo.spawn(function() pogo.rpc(node, "support.attack", fn, {}, timeout) end)
end

--- rpc `fn` on `node` from here `n` times with `timeout` ms (they time out).
function M.rpcs(node, fn, n, timeout)
  local timeouts = 0
  for _ = 1, n do
    local ok, err = pogo.rpc(node, "support.attack", fn, {}, timeout)
    if not ok and tostring(err):match("^timeout") then timeouts = timeouts + 1 end
  end
  return timeouts
end

--- A process that, told "go", raises a reason hard to send: "dag" (a table
-- holding one table twice at each of `depth` levels: 2^depth leaves once
-- encoded) or "big" (a 30 MB string). Its pid.
function M.doomed(kind, depth)
  return pogo.spawn(function()
    pogo.receive(function(m) return m == "go" end)
    if kind == "big" then error(string.rep("x", 30 * 1024 * 1024), 0) end
    local t = { "leaf" }
    for _ = 1, depth or 40 do t = { t, t } end
    error(t, 0)
  end)
end

--- A process registered as "nonreader" that never reads its mailbox; its pid.
function M.nonreader()
  local pid = pogo.spawn(function() pogo.sleep(3600000) end)
  pogo.register("nonreader", pid)
  return pid
end

--- sleep as an rpc (a worker that blocks).
function M.sleep(ms)
  pogo.sleep(ms or 60000)
  return true
end

return M
