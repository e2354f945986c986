--- Nodes: starting this node, connecting to others, remote calls.
--
-- `pogo.dist` implements the node API that the `pogo` module exposes and
-- documents (`pogo.start`, `pogo.connect`, `pogo.disconnect`, `pogo.block`,
-- `pogo.nodes`, `pogo.monitor_nodes`, `pogo.rpc`) and runs the node's `"$rpc"`
-- service (a `pogo.server`); the transport itself is in C (`csrc/dist/`).
--
-- **Mesh.** A node listens on `host:port` and is named `name@host:port`. It
-- dials its seeds (retried forever, with a delay doubling from
-- `backoff_min_ms` to `backoff_max_ms`); when a link comes up both sides
-- exchange the names of their other peers and dial the ones they do not know,
-- so connecting to one seed joins the whole cluster. Every pair of nodes ends
-- up with one link: when two nodes dial each other at once, the dial made by
-- the node with the smaller name wins. A lost peer (a crash, the network) is
-- redialed until it comes back or `forget_ms` pass (seeds are never
-- forgotten). A peer that left on purpose (`pogo.stop`: its links close with
-- "shutdown"; `pogo.disconnect` there, or an observer leaving: "disconnect")
-- is not redialed, nor taken back from gossip, until it connects again or
-- `pogo.connect` names it; the nodes that saw it go tell their other peers,
-- so one that knew it from gossip only stops dialing it too. A seed that
-- stopped has its address dialed every `backoff_max_ms`.
--
-- **Logs.** The transport's lines (connections made, lost, refused) go to
-- `pogo.log` with `module = "pogo.dist"` and `peer`; `log = false` (bin/pogo
-- `--quiet`) turns them off.
--
-- **Security.** Links are authenticated with the cookie (HMAC-SHA256
-- challenge/response both ways; the cookie never crosses the wire). A peer
-- that knows the cookie may run anything on the node (`pogo.rpc`), as in
-- Erlang: that is by design. Without `tls` the links are not encrypted: run
-- such nodes on a trusted network. With `tls = {cert =, key =, ca =}` every
-- link is mutual TLS 1.3 (each side's certificate must be signed by `ca`) and
-- the cookie handshake runs inside it, so someone on the path can neither read
-- nor inject; a node without TLS and a TLS node never link (both log why).
--
-- **Names and addresses.** A node listens on `host:port` and is named and
-- dialed by `advertise` (`"host:port"` or `"host"`, the listening port then)
-- when given: listen on `0.0.0.0`, be reached as `name@10.1.2.3:4370`.
--
-- **Discovery.** `discovery = {dns = "name:port", interval_ms = 5000,
-- nameserver = "ip:port"}` makes every A/AAAA record of `name` a seed, read
-- again every interval (a Kubernetes headless service); `"_service._tcp.name"`
-- reads SRV records (host and port from each). An address that leaves DNS is
-- no longer dialed once its node is down; connected nodes stay.
--
-- **Failure detection.** A peer silent for `timeout_ms` is declared down
-- (reason `"timeout"`), a closed connection at once (`"connection_closed"`),
-- a peer that stops cleanly says so (`"shutdown"`), `pogo.disconnect` gives
-- `"disconnect"` on both sides, and a peer sending garbage is dropped with
-- `"protocol_error"`. Heartbeats come from the event loop: a node whose loop
-- is blocked (a long computation in one process) for `timeout_ms` looks dead
-- to its peers.
--
-- **Keeping nodes apart** (netsplit tests): `pogo.block(node, true)`
-- disconnects `node` and refuses it both ways (it is never dialed, and its
-- dials are refused) until `pogo.block(node, false)`, which dials it again.
-- Blocking on one side is enough to keep two nodes apart; `opts.block`
-- blocks names from the start. `pogo.disconnect(node)` alone only stops the
-- two from redialing each other: a `connect` (or a restart) brings it back.
--
-- **Flow control.** Messages to one node are batched and written once per
-- loop iteration. A process sending to a node whose unsent backlog is above
-- 4 MiB is suspended until it drops below 1 MiB (as Erlang does with busy
-- distribution ports).
-- @module pogo.dist
local core = require "pogo.core"
local uv = require "luv"
local log = require("pogo.log").with { module = "pogo.dist" }

local M = {}

local pogo -- the pogo table, given to install
local settings = { timeout_ms = 5000 }

local function hex(s)
  return (s:gsub(".", function(c) return string.format("%02x", c:byte()) end))
end

-- A fresh cookie: 20 upper-case letters, like Erlang's.
local function new_cookie()
  local bytes = core.dist_random(20)
  return (bytes:gsub(".", function(c) return string.char(65 + c:byte() % 26) end))
end

local function trim(s)
  return (s:gsub("^%s+", ""):gsub("%s+$", ""))
end

local FILE_TYPES = { char = "character device", block = "block device", fifo = "FIFO" }
local OCTAL_077, OCTAL_600 = tonumber("077", 8), tonumber("600", 8)

-- The reason in a luv error ("EACCES: permission denied: /path" -> "permission denied").
local function uv_reason(err, path)
  local why = tostring(err):gsub("^%u+: ", "")
  local tail = ": " .. path
  if why:sub(-#tail) == tail then why = why:sub(1, -#tail - 1) end
  return why
end

--- Read a cookie file (as `pogo.start` reads `~/.pogo.cookie` and
-- `bin/pogo --cookie-file` its file). The cookie is the file's content
-- without surrounding white space. Like Erlang, a file that group or others
-- may access (mode & 077) is refused. Each problem has its own message: a
-- missing file, a directory (or any other non-regular file), a file open to
-- others (with the `chmod 600` that fixes it), one that cannot be read, an
-- empty one.
-- @tparam string path
-- @treturn[1] string the cookie
-- @treturn[2] nil
-- @treturn[2] string the reason, naming the file
-- @treturn[2] string the luv error code (`"ENOENT"`: the file does not exist),
--  or nil when the file exists but cannot be used
function M.read_cookie_file(path)
  if type(path) ~= "string" then error("read_cookie_file: path must be a string, got " .. type(path), 2) end
  local st, err, code = uv.fs_stat(path)
  if not st then
    if code == "ENOENT" then return nil, "the cookie file " .. path .. " does not exist", code end
    return nil, "cannot read the cookie file " .. path .. ": " .. uv_reason(err, path), code
  end
  if st.type == "directory" then
    return nil, "the cookie file " .. path .. " is a directory, not a file"
  elseif st.type ~= "file" then
    return nil, "the cookie file " .. path .. " is not a regular file (it is a "
                .. (FILE_TYPES[st.type] or tostring(st.type)) .. ")"
  end
  if st.mode & OCTAL_077 ~= 0 then
    return nil, string.format("the cookie file %s can be accessed by group or others (mode %04o); "
                              .. "make it private to its owner: chmod 600 %s",
                              path, st.mode & tonumber("7777", 8), path)
  end
  local fd
  fd, err, code = uv.fs_open(path, "r", 0)
  if not fd then
    return nil, "cannot read the cookie file " .. path .. ": " .. uv_reason(err, path), code
  end
  local data
  data, err, code = uv.fs_read(fd, math.max(st.size, 1), 0)
  uv.fs_close(fd)
  if not data then
    return nil, "cannot read the cookie file " .. path .. ": " .. uv_reason(err, path), code
  end
  local cookie = trim(data)
  if cookie == "" then return nil, "the cookie file " .. path .. " is empty" end
  return cookie
end

-- The default cookie: ~/.pogo.cookie, created with a random cookie and mode
-- 0600 when missing. A file that exists but cannot be used is an error the
-- user must fix: it raises with its reason (no Lua position).
local function cookie_file(path)
  local c, why, code = M.read_cookie_file(path)
  if c then return c end
  if code ~= "ENOENT" then error("pogo.start: " .. why, 0) end
  c = new_cookie()
  local fd, err, ecode = uv.fs_open(path, "wx", OCTAL_600)
  if not fd then
    if ecode == "EEXIST" then -- another node created it first
      local again, why2 = M.read_cookie_file(path)
      if again then return again end
      error("pogo.start: " .. why2, 0)
    end
    error("pogo.start: cannot create the cookie file " .. path .. ": " .. uv_reason(err, path), 0)
  end
  local ok, werr = uv.fs_write(fd, c .. "\n", 0)
  uv.fs_close(fd)
  if not ok then
    os.remove(path)
    error("pogo.start: cannot write the cookie file " .. path .. ": " .. uv_reason(werr, path), 0)
  end
  log.info("created the cookie file %s (mode 0600)", path)
  return c
end

local function resolve_cookie(opts)
  if opts.cookie ~= nil then return opts.cookie end
  local env = os.getenv("POGO_COOKIE")
  if env and env ~= "" then return env end
  local home = os.getenv("HOME")
  if not home or home == "" then
    error("pogo.start: no cookie: set opts.cookie or POGO_COOKIE (HOME is unknown)", 0)
  end
  return cookie_file(home .. "/.pogo.cookie")
end

-- ---- rpc ----

-- rpc requests answered by their worker (weak: a `from` is dropped with its request)
local answered = setmetatable({}, { __mode = "k" })

local function rpc_answer(from, value)
  answered[from] = true
  local ok, err = pcall(pogo.reply, from, value)
  if ok then return end
  if value[1] == false then -- an error value that cannot cross: its text then
    ok = pcall(pogo.reply, from, { false, tostring(value[2]) })
    if ok then return end
  end
  pcall(pogo.reply, from, { false, "rpc: the result cannot be sent: " .. tostring(err) })
end

-- Body of the process that runs one rpc request.
local function rpc_worker(from, req)
  if type(req) ~= "table" or type(req[1]) ~= "string" or type(req[2]) ~= "string"
      or type(req[3]) ~= "table" then
    return rpc_answer(from, { false, "rpc: malformed request" })
  end
  local mod, fn, args = req[1], req[2], req[3]
  local okm, m = pcall(require, mod)
  if not okm then
    if type(m) == "string" and m:find("module '" .. mod .. "' not found", 1, true) then
      return rpc_answer(from, { false, "undef: module '" .. mod .. "' not found" })
    end
    return rpc_answer(from, { false, m })
  end
  local okf, f = pcall(function() return m[fn] end)
  if not okf or type(f) ~= "function" then
    return rpc_answer(from, { false, "undef: " .. mod .. "." .. fn .. " is not a function" })
  end
  local n = math.type(req[5]) == "integer" and req[5] or args.n or #args
  if n < 0 or n > #args + 256 then n = #args end -- (a peer's count that cannot be: unpack would raise here)
  local res = table.pack(pcall(f, table.unpack(args, 1, n)))
  if res[1] then
    return rpc_answer(from, { true, table.pack(table.unpack(res, 2, res.n)) })
  end
  return rpc_answer(from, { false, res[2] })
end

-- The "$rpc" server (a `pogo.server`): one worker process per request,
-- answering with pogo.call's protocol, so the caller's monitor reports
-- noconnection. It monitors its workers: one that exits without answering
-- (pogo.exit in the called function, killed) is answered for with false,
-- "exit: <reason>". It also monitors each caller and keeps each request's
-- deadline (its timeout, sent as the request's 4th field): when the caller
-- exits (or its node goes) or the deadline passes, the worker is killed, so
-- a caller that gave up leaves nothing running.
-- State: jobs (worker monitor ref -> {from, pid, cref, deadline}), callers
-- (caller monitor ref -> worker monitor ref), next (the earliest deadline).
local Rpc = {}

local now = core.now

local function earliest(s)
  local next_at
  for _, job in pairs(s.jobs) do
    if job.deadline and (not next_at or job.deadline < next_at) then next_at = job.deadline end
  end
  s.next = next_at
end

-- Kill the worker of a request whose caller has gone or given up.
local function cancel(s, job)
  if job.cancelled then return end
  job.cancelled = true
  if job.cref then s.callers[job.cref] = nil; pogo.demonitor(job.cref) end
  pogo.exit(job.pid, "kill")
end

-- Cancel the requests past their deadline (checked on every message too, so
-- a server that is never idle still keeps them).
local function expire(s)
  if not s.next or now() < s.next then return end
  local t = now()
  for _, job in pairs(s.jobs) do
    if job.deadline and job.deadline <= t then
      job.deadline = nil
      cancel(s, job)
    end
  end
  earliest(s)
end

function Rpc.init()
  return { jobs = {}, callers = {} }
end

function Rpc.timeout(s)
  if not s.next then return nil end
  local ms = s.next - now()
  return ms > 0 and ms or 0
end

function Rpc.handle_call(req, from, s)
  expire(s)
  local pid, wref = pogo.spawn_monitor(rpc_worker, from, req)
  local job = { from = from, pid = pid }
  local timeout = type(req) == "table" and req[4]
  if math.type(timeout) == "integer" and timeout >= 0 then
    job.deadline = now() + timeout
    if not s.next or job.deadline < s.next then s.next = job.deadline end
  end
  if core.is_pid(from[1]) then
    job.cref = pogo.monitor(from[1])
    s.callers[job.cref] = wref
  end
  s.jobs[wref] = job
  return nil, s, "noreply"
end

function Rpc.handle_info(msg, s)
  expire(s)
  if type(msg) ~= "table" or msg[1] ~= "DOWN" then return s end
  local ref = msg[2]
  local job = s.jobs[ref]
  if job then -- a worker ended
    s.jobs[ref] = nil
    if job.cref and s.callers[job.cref] then
      s.callers[job.cref] = nil
      pogo.demonitor(job.cref)
    end
    if not answered[job.from] and not job.cancelled then
      rpc_answer(job.from, { false, "exit: " .. tostring(msg[4]) })
    end
    answered[job.from] = nil
    if job.deadline and job.deadline == s.next then earliest(s) end
  elseif s.callers[ref] then -- a caller went away: its worker goes too
    local wref = s.callers[ref]
    s.callers[ref] = nil
    local w = s.jobs[wref]
    if w then
      w.cref = nil
      cancel(s, w)
    end
  end
  return s
end

-- ---- API (pogo.start and the others are documented in `pogo`) ----

-- processes that called monitor_nodes before pogo.start
local early_subscribers = {}

-- Programming errors in the options raise at the caller, naming the option.
local function check(ok, field, what, v)
  if not ok then
    error(string.format("pogo.start: opts.%s must be %s, got %s", field, what,
                        type(v) == "string" and string.format("%q", v) or tostring(v)), 4)
  end
end

local INTEGER_OPTS = { "heartbeat_ms", "timeout_ms", "max_frame", "backoff_min_ms", "backoff_max_ms", "forget_ms" }

local KNOWN_OPTS = {}
for _, k in ipairs { "name", "host", "port", "cookie", "seeds", "heartbeat_ms", "timeout_ms", "max_frame",
                     "backoff_min_ms", "backoff_max_ms", "forget_ms", "log", "block", "advertise", "tls",
                     "discovery", "max_memory", "preempt_ms", "http" } do
  KNOWN_OPTS[k] = true
end

local function check_opts(opts)
  local unknown = {}
  for k in pairs(opts) do
    if not KNOWN_OPTS[k] then unknown[#unknown + 1] = tostring(k) end
  end
  if #unknown > 0 then -- (a typo, as heartbeat for heartbeat_ms, would go unnoticed)
    table.sort(unknown)
    error("pogo.start: unknown option: " .. unknown[1], 3)
  end
  for _, k in ipairs { "name", "host" } do
    check(opts[k] == nil or type(opts[k]) == "string", k, "a string", opts[k])
  end
  local port = opts.port
  check(port == nil or (math.type(port) == "integer" and port >= 0 and port <= 65535),
        "port", "an integer from 0 to 65535", port)
  for _, k in ipairs(INTEGER_OPTS) do
    check(opts[k] == nil or math.type(opts[k]) == "integer", k, "an integer", opts[k])
  end
  -- an idle link hears a PING each heartbeat: at timeout_ms or slower, healthy links went down
  local beat, timeout = opts.heartbeat_ms or 1000, opts.timeout_ms or 5000
  if beat >= timeout then
    error(string.format("pogo.start: opts.heartbeat_ms (%d) must be less than opts.timeout_ms (%d)", beat, timeout), 3)
  end
  check(opts.cookie == nil or (type(opts.cookie) == "string" and opts.cookie ~= ""),
        "cookie", "a non-empty string", opts.cookie)
  local seeds = opts.seeds
  local seeds_ok = seeds == nil or type(seeds) == "string" or type(seeds) == "table"
  if type(seeds) == "table" then
    for _, s in ipairs(seeds) do seeds_ok = seeds_ok and type(s) == "string" end
  end
  check(seeds_ok, "seeds", 'a list of "host:port" or node names', seeds)
  check(opts.log == nil or type(opts.log) == "boolean", "log", "a boolean", opts.log)
  local mm = opts.max_memory
  check(mm == nil or mm == false or (math.type(mm) == "integer" and mm >= 0), "max_memory",
        "a number of bytes (or false)", mm)
  local pm = opts.preempt_ms
  check(pm == nil or type(pm) == "boolean" or (type(pm) == "number" and pm >= 0 and pm <= 60000), "preempt_ms",
        "a number of ms from 0 to 60000 (or false)", pm)
  check(opts.block == nil or type(opts.block) == "table", "block", "a list of node names", opts.block)
  check(opts.advertise == nil or type(opts.advertise) == "string", "advertise", '"host:port" or "host"',
        opts.advertise)
  check(opts.http == nil or type(opts.http) == "string", "http", '"host:port"', opts.http)
  local tls = opts.tls
  check(tls == nil or tls == false or type(tls) == "table", "tls", "a table {cert =, key =, ca =}", tls)
  if type(tls) == "table" then
    for _, k in ipairs { "cert", "key", "ca" } do
      check(type(tls[k]) == "string" and tls[k] ~= "", "tls." .. k, "a file name", tls[k])
    end
  end
  local disc = opts.discovery
  check(disc == nil or type(disc) == "table", "discovery", '{dns = "name:port", interval_ms =, nameserver =}',
        disc)
  if disc then
    check(type(disc.dns) == "string" and disc.dns ~= "", "discovery.dns", '"name:port" or "_service._tcp.name"',
          disc.dns)
    check(disc.interval_ms == nil or (math.type(disc.interval_ms) == "integer" and disc.interval_ms >= 10),
          "discovery.interval_ms", "an integer of 10 or more", disc.interval_ms)
    check(disc.nameserver == nil or type(disc.nameserver) == "string", "discovery.nameserver", '"ip:port"',
          disc.nameserver)
  end
end

-- pogo.start(opts) -> name
function M.start(opts)
  opts = opts or {}
  if type(opts) ~= "table" then error("pogo.start: options table expected, got " .. type(opts), 2) end
  check_opts(opts)
  if opts.max_memory ~= nil then
    local ok, err = pcall(core.set_max_memory, opts.max_memory or 0)
    if not ok then error("pogo.start: " .. tostring(err), 0) end
  end
  if opts.preempt_ms ~= nil then core.set_preempt_ms(opts.preempt_ms) end
  local seeds = opts.seeds
  if type(seeds) == "string" then seeds = { seeds } end
  local ok, name = pcall(core.dist_start, {
    name = opts.name or ("pogo" .. hex(core.dist_random(4))),
    host = opts.host or "127.0.0.1",
    port = opts.port or 0,
    cookie = resolve_cookie(opts),
    seeds = seeds,
    heartbeat_ms = opts.heartbeat_ms,
    timeout_ms = opts.timeout_ms,
    max_frame = opts.max_frame,
    backoff_min_ms = opts.backoff_min_ms,
    backoff_max_ms = opts.backoff_max_ms,
    forget_ms = opts.forget_ms,
    log = opts.log,
    block = opts.block,
    advertise = opts.advertise,
    tls = opts.tls or nil,
    discovery = opts.discovery,
  })
  -- (called through pcall, the core's errors carry no Lua position)
  if not ok then error(name, 0) end
  core.set_node_name(name)
  settings.timeout_ms = opts.timeout_ms or 5000
  settings.seeds = {}
  for i, seed in ipairs(seeds or {}) do settings.seeds[i] = seed end
  for pid in pairs(early_subscribers) do
    if core.alive(pid) then core.dist_monitor_nodes(pid, true) end
  end
  early_subscribers = {}
  -- the "$rpc" server, kept running (pogo.service: out of memory under
  -- `ulimit -v`, it died, and every later rpc to the node got noproc)
  require("pogo.service").keep("$rpc", function()
    local server = require "pogo.server" -- not at the top: pogo.server needs the pogo table
    local pid = pogo.spawn(server.enter_loop, Rpc, Rpc.init())
    pogo.register("$rpc", pid)
    return pid
  end)
  -- every node runs the cluster-wide registry from its start, as every Erlang node runs global
  require("pogo.registry").start()
  if opts.http then -- the web page of the cluster (pogo.dashboard)
    local dash, why = require("pogo.dashboard").start(opts.http)
    if not dash then
      M.dist_stop()
      error("pogo.start: http: " .. why, 0)
    end
    require("pogo.log").with({ module = "pogo.dashboard" }).info("the cluster's web page is at http://%s/", dash.addr)
  end
  return name
end

-- pogo.connect(addr, timeout_ms) -> name | nil, reason
function M.connect(addr, timeout_ms)
  local timeout = timeout_ms
  if type(addr) ~= "string" then error("pogo.connect: \"host:port\" or node name expected", 2) end
  core.check_block("pogo.connect", 2) -- before the dial: host code, luv callbacks may not wait
  local ref = pogo.make_ref()
  local name = core.dist_connect(addr, pogo.self(), ref)
  if name then return name end
  local msg = pogo.receive(function(m)
    return type(m) == "table" and m[1] == ref
  end, timeout or settings.timeout_ms + 1000)
  if not msg then return nil, "timeout" end
  if msg[2] then return msg[3] end
  return nil, msg[3]
end

-- A node that is no string is a programming error (raised at the caller of
-- pogo.disconnect or pogo.block); a well-formed name of no known node is not.
local function check_node(fn, node)
  if type(node) ~= "string" then error(fn .. ": node must be a node name (a string), got " .. type(node), 3) end
end

-- pogo.disconnect(node) -> was connected
function M.disconnect(node)
  check_node("pogo.disconnect", node)
  return core.dist_disconnect(node)
end

-- pogo.block(node, flag)
function M.block(node, flag)
  check_node("pogo.block", node)
  core.dist_block(node, flag ~= false)
end

-- pogo.nodes()
function M.nodes()
  return core.dist_nodes()
end

-- pogo.monitor_nodes(flag)
function M.monitor_nodes(flag)
  local me = pogo.self()
  if not core.dist_info().name then
    -- not started yet: subscribe when pogo.start runs (as Erlang allows)
    early_subscribers[me] = flag ~= false or nil
    return
  end
  core.dist_monitor_nodes(me, flag ~= false)
end

-- pogo.rpc(node, module, fn, args, timeout_ms) -> true, results... | false, err
function M.rpc(node, module, fn, args, timeout_ms)
  local timeout = timeout_ms
  if type(node) ~= "string" or not node:find("^[^@]+@.+:%d+$") then
    error("pogo.rpc: node must be a node name (name@host:port), got " .. (type(node) == "string"
      and string.format("%q", node) or type(node)), 2)
  end
  if type(module) ~= "string" or type(fn) ~= "string" then
    error("pogo.rpc: module and function names expected", 2)
  end
  if args ~= nil and type(args) ~= "table" then error("pogo.rpc: args must be an array", 2) end
  core.check_block("pogo.rpc", 2) -- raises where the caller cannot wait, rather than returning false
  timeout = timeout or 5000
  if type(timeout) ~= "number" or timeout ~= timeout or timeout < 0 then
    error("pogo.rpc: timeout_ms must be a non-negative number of ms (or math.huge)", 2)
  end
  -- the deadline goes with the request: past it the worker is killed there
  local deadline = math.type(timeout) == "integer" and timeout or nil
  -- (n: the count of the arguments, nils included, which a holed array does not keep)
  local n = args and (args.n or #args) or 0
  local ok, res = pcall(pogo.call, { "$rpc", node }, { module, fn, args or {}, deadline, n }, timeout)
  if not ok then -- (an argument that cannot be sent: named by its place in args, not in the call's envelope)
    return false, (tostring(res):gsub("^.-msg%[3%]%[3%]", "args", 1))
  end
  if type(res) ~= "table" then return false, "rpc: malformed reply" end
  if res[1] == true then
    local r = res[2] or {}
    return true, table.unpack(r, 1, r.n or #r)
  end
  return false, res[2]
end

--- Close every link, telling peers "shutdown" (used by `pogo.stop`). From the
-- main chunk it waits (up to `drain_ms`) until peers have closed their side.
-- @tparam[opt=1000] integer drain_ms
function M.dist_stop(drain_ms)
  if drain_ms ~= nil and math.type(drain_ms) ~= "integer" then
    error("pogo.dist_stop: drain_ms must be an integer, got " .. tostring(drain_ms), 2)
  end
  core.dist_stop()
  core.dist_drain(drain_ms or 1000)
  settings.seeds = nil
end

--- The seeds given to `pogo.start` (a copy; empty before it).
-- @treturn {string,...}
function M.seeds()
  local out = {}
  for i, seed in ipairs(settings.seeds or {}) do out[i] = seed end
  return out
end

--- Transport state for tools and tests: name, port, listen (the address
-- listened on), tls (whether links run TLS), peers (up, dialer, creation,
-- backlog, wanted (dialed when down), blocked, seed, left (it stopped
-- cleanly, or a peer said it left)), links (state, peer, outgoing, tls) and
-- targets (the addresses dialed as seeds, connect requests or found in DNS:
-- addr, seed, found, name, error: why its last dial failed), own (the
-- addresses found in DNS that a dial found to reach this node itself,
-- "host:port": never dialed again) and discovery (with DNS discovery: name,
-- rounds completed, the last round's status "ok", "not found", "no records"
-- or "failed" with c-ares's error, and its addrs).
-- @function dist_info
M.dist_info = core.dist_info

--- Give this module the `pogo` table (it sends, receives and calls through
-- it); `pogo` then exposes the node API above as its own functions.
-- @tparam table p the `pogo` module
function M.install(p)
  pogo = p
end

return M
