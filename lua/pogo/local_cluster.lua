--- A local cluster of node OS processes (for specs, demos and benchmarks),
-- in the manner of Elixir's LocalCluster: start nodes with `bin/pogo` on
-- 127.0.0.1 with ephemeral ports, connect to them, rpc, stop or kill them.
--
--   local cluster = require "pogo.local_cluster"
--   local c = cluster.new{timeout_ms = 1000, heartbeat_ms = 200}
--   c:start_self()                       -- the spec's own node (pogo.start)
--   local a = c:start_node{name = "a"}   -- lua5.4 bin/pogo ... on port 0
--   c:connect(a)
--   local ok, v = c:rpc(a, "support.remote", "echo")
--   c:kill(a)        -- SIGKILL; also c:stop (SIGTERM), c:pause / c:resume
--   c:teardown()     -- in the spec's teardown (or finally)
--
-- Every OS process started is recorded by pid and killed (SIGKILL) by
-- teardown, by the module's garbage-collection guard when the spec's Lua state
-- closes, and, through --watch-stdin, by the nodes themselves when the spec
-- process dies (their stdin pipe closes). Every wait is bounded.
--
-- TLS: `new{tls = {cert =, key =, ca =}}` gives every node and the spec's own
-- node those settings. With the environment variable POGO_TEST_TLS=1 a
-- cluster without `tls` uses throwaway certificates (`test_tls`), so the
-- cluster specs run over TLS unchanged.
-- @module pogo.local_cluster
local pogo = require "pogo"
local uv = require "luv"

local M = {}

local LIVE = {} -- pid -> true for every process started and not yet seen exiting
local COOKIE = "test-" .. tostring(uv.hrtime()) -- one per spec process: clusters share the spec's node
local SEQ = 0 -- node ids, unique in the spec process (messages about them outlive a cluster)
local closing = false -- the Lua state is closing: pogo must not be called any more
local TEST_TLS -- the certificates of test_tls, made once per process

local function kill_all()
  closing = true
  for pid in pairs(LIVE) do
    pcall(uv.kill, pid, "sigkill")
    LIVE[pid] = nil
  end
  if TEST_TLS then require("pogo.local_cluster.certs").remove(TEST_TLS.dir) end
end

-- Kills whatever is left when the Lua state closes (busted exits with
-- os.exit(code, true)), even if a spec failed before its teardown.
M._guard = setmetatable({}, { __gc = kill_all })

local Cluster = {}
Cluster.__index = Cluster

local function pass_env(extra)
  local env = {}
  for _, k in ipairs { "PATH", "HOME", "LD_PRELOAD", "ASAN_OPTIONS", "LSAN_OPTIONS", "UBSAN_OPTIONS",
                       "TMPDIR" } do
    local v = os.getenv(k)
    if v then env[#env + 1] = k .. "=" .. v end
  end
  env[#env + 1] = "LUA_PATH=" .. package.path
  env[#env + 1] = "LUA_CPATH=" .. package.cpath
  for k, v in pairs(extra or {}) do
    for i = #env, 1, -1 do
      if env[i]:sub(1, #k + 1) == k .. "=" then table.remove(env, i) end
    end
    env[#env + 1] = k .. "=" .. v
  end
  return env
end

--- The environment given to node processes: PATH, HOME, sanitizer settings,
-- this process's module paths, and `extra` (name -> value).
M.env = pass_env

local function exists(path)
  local f = io.open(path)
  if f then f:close() end
  return f ~= nil
end

--- Where bin/pogo is: $POGO_BIN, else next to the pogo modules (a source tree
-- or a LuaRocks tree), else "pogo" on the PATH.
function M.find_bin()
  local env = os.getenv("POGO_BIN")
  if env then return env end
  local init = package.searchpath("pogo", package.path)
  if init then
    local dir = init:match("^(.*)/[^/]*$") or "."
    for _, rel in ipairs { "/../../bin/pogo", "/../../../../bin/pogo", "/../bin/pogo" } do
      if exists(dir .. rel) then return dir .. rel end
    end
  end
  if exists("bin/pogo") then return "bin/pogo" end
  return "pogo"
end

--- Throwaway TLS settings shared by every node of this process: a CA and
-- one node certificate made with the `openssl` tool in a temporary directory
-- (removed when the Lua state closes).
-- @treturn table `{cert =, key =, ca =}`
function M.test_tls()
  if not TEST_TLS then
    local certs = require "pogo.local_cluster.certs"
    local dir = certs.tmpdir()
    local ok, tls = pcall(function() return certs.node(certs.ca(dir, "ca"), dir, "node") end)
    if not ok then
      certs.remove(dir)
      error(tls, 2)
    end
    tls.dir = dir
    TEST_TLS = tls
  end
  return { cert = TEST_TLS.cert, key = TEST_TLS.key, ca = TEST_TLS.ca }
end

--- Are the clusters of this process on TLS by default (POGO_TEST_TLS=1)?
function M.tls_by_default()
  return os.getenv("POGO_TEST_TLS") == "1"
end

--- A new cluster.
-- @tparam[opt] table opts `cookie` (default: one random cookie per spec
--  process, so successive clusters can share the spec's node), `timeout_ms` (1000),
--  `heartbeat_ms` (200): defaults for the nodes and for `start_self`;
--  `bin` (path of bin/pogo, see `find_bin`), `quiet` (no transport log lines),
--  `tls` (`{cert =, key =, ca =}` for every node; false: none; default:
--  `test_tls()` when POGO_TEST_TLS=1).
function M.new(opts)
  opts = opts or {}
  local tls = opts.tls
  if tls == nil and M.tls_by_default() then tls = M.test_tls() end
  local self = setmetatable({
    bin = opts.bin or M.find_bin(),
    quiet = opts.quiet,
    tls = tls or nil,
    cookie = opts.cookie or COOKIE,
    timeout_ms = opts.timeout_ms or 1000,
    heartbeat_ms = opts.heartbeat_ms or 200,
    nodes = {},
  }, Cluster)
  return self
end

--- Wait until `pred()` is true, polling every 10 ms, at most `timeout_ms`.
-- Raises "timed out waiting for <what>" otherwise.
function M.wait_until(pred, timeout_ms, what)
  local deadline = uv.now() + (timeout_ms or 5000)
  while true do
    local v = pred()
    if v then return v end
    uv.update_time()
    if uv.now() >= deadline then error("timed out waiting for " .. (what or "a condition"), 2) end
    pogo.sleep(10)
  end
end

--- Receive a message matching `pred` within `timeout_ms` or raise.
function M.expect(pred, timeout_ms, what)
  local m = pogo.receive(pred, timeout_ms or 5000)
  if m == nil then error("timed out waiting for " .. (what or "a message"), 2) end
  return m
end

--- Start the spec's own node with the cluster's cookie and timings (once:
-- if it is already started, its name is returned and opts are ignored).
-- @tparam[opt] table opts more pogo.start options
function Cluster:start_self(opts)
  local info = pogo.dist_info()
  if info.started then
    self.self_name = info.name
    return info.name
  end
  local o = { name = "spec", cookie = self.cookie, timeout_ms = self.timeout_ms,
              heartbeat_ms = self.heartbeat_ms, backoff_max_ms = 500, tls = self.tls }
  for k, v in pairs(opts or {}) do o[k] = v end
  self.self_name = pogo.start(o)
  return self.self_name
end

local function tag(kind, node)
  return function(m)
    return type(m) == "table" and m[1] == "$cluster" and m[2] == kind and m[3] == node.id
  end
end

--- Start a node process (lua5.4 bin/pogo --port 0 ...) and wait until it listens.
-- @tparam[opt] table o `name`, `seeds` (list of nodes or addresses), `cookie`
--  (false: none given, bin/pogo's default applies), `timeout_ms`,
--  `heartbeat_ms`, `script` (file), `args` (its arguments), `extra` (more
--  command-line options), `env` (more environment variables, name -> value),
--  `port`, `tls` (`{cert =, key =, ca =}`, or false for none; default: the
--  cluster's), `ulimit_v` (KiB of address space: the node runs under
--  `ulimit -v`, through sh)
-- @return node: {name =, addr =, pid =, out =, err =}; once it has exited,
--  also `exited` ({code =, signal =}) and `exit_ns` (uv.hrtime() then)
function Cluster:start_node(o)
  o = o or {}
  SEQ = SEQ + 1
  local node = { id = SEQ, out = "", err = "" }
  local args = { self.bin, "--print-node", "--watch-stdin",
                 "--name", o.name or ("n" .. SEQ),
                 "--port", tostring(o.port or 0),
                 "--timeout-ms", tostring(o.timeout_ms or self.timeout_ms),
                 "--heartbeat-ms", tostring(o.heartbeat_ms or self.heartbeat_ms) }
  if o.cookie ~= false then
    args[#args + 1] = "--cookie"
    args[#args + 1] = o.cookie or self.cookie
  end
  for _, s in ipairs(o.seeds or {}) do
    args[#args + 1] = "--seeds"
    args[#args + 1] = type(s) == "table" and s.addr or s
  end
  if self.quiet then args[#args + 1] = "--quiet" end
  local tls = o.tls
  if tls == nil then tls = self.tls end
  if tls then
    for _, x in ipairs { "--tls-cert", tls.cert, "--tls-key", tls.key, "--tls-ca", tls.ca } do
      args[#args + 1] = x
    end
  end
  for _, x in ipairs(o.extra or {}) do args[#args + 1] = x end
  if o.script then
    args[#args + 1] = o.script
    for _, x in ipairs(o.args or {}) do args[#args + 1] = x end
  end
  local me = pogo.self()
  local stdin, stdout, stderr = uv.new_pipe(false), uv.new_pipe(false), uv.new_pipe(false)
  local file = os.getenv("LUA") or "lua5.4"
  if o.ulimit_v then -- sh sets the limit, then becomes the node (same pid)
    table.insert(args, 1, file)
    for i, a in ipairs { "-c", 'ulimit -v ' .. math.tointeger(o.ulimit_v) .. ' && exec "$@"', "sh" } do
      table.insert(args, i, a)
    end
    file = "sh"
  end
  local handle, pid
  handle, pid = uv.spawn(file, { args = args, stdio = { stdin, stdout, stderr }, env = pass_env(o.env) },
    function(code, signal)
      node.exited = { code = code, signal = signal }
      node.exit_ns = uv.hrtime() -- when this process saw it exit (uv.hrtime: one clock per machine)
      LIVE[pid] = nil
      handle:close()
      if not closing then pogo.send(me, { "$cluster", "exit", node.id }) end
    end)
  if not handle then error("cannot start bin/pogo: " .. tostring(pid)) end
  LIVE[pid] = true
  node.pid, node.handle, node.stdin = pid, handle, stdin
  stdout:read_start(function(_, data)
    if not data then
      stdout:close()
      return
    end
    node.out = node.out .. data
    if not node.name then
      local name = node.out:match("POGO_NODE (%S+)\n")
      if name then
        node.name = name
        node.addr = name:match("@(.*)$")
        if not closing then pogo.send(me, { "$cluster", "ready", node.id }) end
      end
    end
  end)
  stderr:read_start(function(_, data)
    if not data then
      stderr:close()
      return
    end
    node.err = node.err .. data
  end)
  self.nodes[#self.nodes + 1] = node
  local m = pogo.receive(function(msg)
    return tag("ready", node)(msg) or tag("exit", node)(msg)
  end, 10000)
  if not m or m[2] ~= "ready" then
    error("node " .. (o.name or node.id) .. " did not start: " .. node.err)
  end
  return node
end

--- Connect the spec's node to `node` (raises on failure).
function Cluster:connect(node) -- luacheck: no unused args
  local name, err = pogo.connect(node.addr)
  if not name then error("cannot connect to " .. tostring(node.addr) .. ": " .. tostring(err), 2) end
  return name
end

--- pogo.rpc on `node` (a node record or a name).
function Cluster:rpc(node, module, fn, args, timeout) -- luacheck: no unused args
  return pogo.rpc(type(node) == "table" and node.name or node, module, fn, args, timeout)
end

--- Whether `node` (a node record or a name) lists node `name` among its
-- connected nodes; false when it does not answer an rpc within 1 s.
-- @param node
-- @tparam string name
-- @treturn boolean
function Cluster:sees(node, name)
  local ok, nodes = self:rpc(node, "pogo", "nodes", {}, 1000)
  if not ok then return false end
  for _, n in ipairs(nodes) do
    if n == name then return true end
  end
  return false
end

--- rpc that must succeed: returns the results.
function Cluster:call(node, module, fn, args, timeout)
  local res = table.pack(self:rpc(node, module, fn, args, timeout))
  if not res[1] then
    error(string.format("rpc %s.%s on %s failed: %s", module, fn, tostring(node.name or node),
                        tostring(res[2])), 2)
  end
  return table.unpack(res, 2, res.n)
end

--- Wait until `node`'s process exited (at most timeout_ms); returns its exit record.
function Cluster:wait_exit(node, timeout_ms) -- luacheck: no unused args
  if node.exited then return node.exited end
  pogo.receive(tag("exit", node), timeout_ms or 5000)
  return node.exited
end

local function signal(node, sig)
  if node.exited or not LIVE[node.pid] then return false end
  return uv.kill(node.pid, sig) == 0
end

--- The nodes started by this cluster whose process has not exited, in the
-- order they were started.
-- @treturn {table,...}
function Cluster:alive()
  local out = {}
  for _, node in ipairs(self.nodes) do
    if not node.exited then out[#out + 1] = node end
  end
  return out
end

--- SIGTERM (a clean stop) and wait for the exit.
function Cluster:stop(node, timeout_ms)
  signal(node, "sigterm")
  return self:wait_exit(node, timeout_ms)
end

--- SIGKILL and wait for the exit.
function Cluster:kill(node, timeout_ms)
  signal(node, "sigkill")
  return self:wait_exit(node, timeout_ms)
end

--- SIGSTOP.
function Cluster:pause(node) -- luacheck: no unused args
  return signal(node, "sigstop")
end

--- SIGCONT.
function Cluster:resume(node) -- luacheck: no unused args
  return signal(node, "sigcont")
end

--- Kill every node still running (by pid) and wait for them briefly. Raises
-- if a node reported a sanitizer error on stderr (under make asan).
function Cluster:teardown()
  for _, node in ipairs(self.nodes) do signal(node, "sigkill") end
  for _, node in ipairs(self.nodes) do
    if not node.exited then self:wait_exit(node, 2000) end
    if node.stdin and not node.stdin:is_closing() then node.stdin:close() end
  end
  local reports = {}
  for _, node in ipairs(self.nodes) do
    if LIVE[node.pid] then pcall(uv.kill, node.pid, "sigkill") end
    if node.err:find("Sanitizer", 1, true) or node.err:find("runtime error:", 1, true) then
      reports[#reports + 1] = (node.name or node.id) .. ":\n" .. node.err
    end
  end
  self.nodes = {}
  -- let the loop finish closing the handles: luv 1.44 crashes at exit on a
  -- handle closed but never processed by the loop
  pogo.sleep(20)
  if #reports > 0 then error("sanitizer reports from nodes:\n" .. table.concat(reports, "\n")) end
end

--- Start two nodes, `b` seeded with `a`, connect this node to `a` and wait
-- until all three see each other (the two-node fixture of the cluster specs).
-- @tparam table a_opts `start_node` options of the first node
-- @tparam table b_opts `start_node` options of the second (its seeds are set)
-- @return the two nodes
function Cluster:pair(a_opts, b_opts)
  local a = self:start_node(a_opts)
  local o = {}
  for k, v in pairs(b_opts) do o[k] = v end
  o.seeds = { a }
  local b = self:start_node(o)
  self:connect(a)
  self:wait_meshed { a, b }
  return a, b
end

--- Start `n` nodes, each seeded with the previous one only (the first with
-- `first_seed` if given; without it, the spec's node, if started, connects
-- to the first), and wait until all of them and the spec's node see each
-- other. Returns the list of nodes.
function Cluster:mesh(n, first_seed, timeout_ms)
  local list = {}
  for i = 1, n do
    local seed = i == 1 and first_seed or list[i - 1]
    list[i] = self:start_node { seeds = seed and { seed } or nil }
    if i == 1 and first_seed == nil and self.self_name and pogo.dist_info().started then self:connect(list[1]) end
  end
  self:wait_meshed(list, timeout_ms)
  return list
end

local function sorted(t)
  table.sort(t)
  return table.concat(t, " ")
end

--- Wait until every node in `list` (and the spec's node, if started) sees all
-- the others.
function Cluster:wait_meshed(list, timeout_ms)
  local names = {}
  for _, node in ipairs(list) do names[#names + 1] = node.name end
  if self.self_name then names[#names + 1] = self.self_name end
  M.wait_until(function()
    for _, node in ipairs(list) do
      local ok, peers = self:rpc(node, "pogo", "nodes", {}, 1000)
      if not ok or #peers ~= #names - 1 then return false end
    end
    if self.self_name and #pogo.nodes() ~= #names - 1 then return false end
    return true
  end, timeout_ms or 10000, "a full mesh of " .. sorted(names))
end

return M
