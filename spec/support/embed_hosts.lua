--- Start and stop the embedding examples (examples/embed/) as OS processes,
-- for spec/embed/*_spec.lua and bench/embed.lua:
--   "cqueues"  lua5.4 examples/embed/cqueues/node.lua
--   "prosody"  Debian's prosody with a minimal config written to a temporary
--              directory (loopback only, c2s/s2s/http on free ports, its own
--              data directory, mod_pogo from examples/embed/prosody)
--   "c_host"   $BUILD/examples/pogo_c_host: two nodes in one process
--   "ticker"   bench/support/embed_ticker.lua: steps every 10 ms, no fd
-- Each gets the cookie, seeds, timings and a script (run as its node's first
-- process) and reports its node names: "POGO_NODE <name>" lines (Prosody:
-- mod_pogo's "pogo node <name> started" log line on its console). Every
-- process is recorded by pid and killed (SIGKILL) by `kill`, and by a guard
-- when the Lua state closes. With POGO_VALGRIND=1 the C host runs under
-- valgrind (its exit status then says whether valgrind found errors).
-- The caller drives the loop (a plain script or spec: waits block in pogo).
local uv = require "luv"
local cluster = require "pogo.local_cluster"

local M = {}

local LIVE = {}
M._guard = setmetatable({}, { __gc = function() for pid in pairs(LIVE) do pcall(uv.kill, pid, "sigkill") end end })

local ROOT = (function()
  local init = package.searchpath("pogo", package.path)
  local dir = init and init:match("^(.*)/lua/pogo/init%.lua$")
  if dir and not dir:match("^/") then dir = uv.cwd() .. "/" .. dir end
  return dir or uv.cwd()
end)()
M.root = ROOT

local function absolute_path(path)
  local out = {}
  for entry in path:gmatch("[^;]+") do
    if not entry:match("^/") then entry = ROOT .. "/" .. entry:gsub("^%./", "") end
    out[#out + 1] = entry
  end
  return table.concat(out, ";")
end

--- The environment of the hosts: local_cluster's, with absolute module paths
-- (Prosody drops relative ones) that include spec/ (the fixtures).
function M.env(extra)
  local e = { LUA_PATH = absolute_path(package.path .. ";" .. ROOT .. "/spec/?.lua"),
              LUA_CPATH = absolute_path(package.cpath) }
  for k, v in pairs(extra or {}) do e[k] = v end
  return cluster.env(e)
end

local function free_port()
  local s = uv.new_tcp()
  assert(s:bind("127.0.0.1", 0))
  local port = s:getsockname().port
  s:close()
  return port
end

local function lua_string(v)
  return string.format("%q", v)
end

local function lua_list(list)
  local out = {}
  for i, v in ipairs(list or {}) do out[i] = lua_string(v) end
  return "{ " .. table.concat(out, ", ") .. " }"
end

-- A minimal Prosody config: loopback only, free ports, data in `dir`.
local function prosody_config(dir, o)
  local lines = {
    "-- written by spec/support/embed_hosts.lua",
    "data_path = " .. lua_string(dir .. "/data"),
    "pidfile = " .. lua_string(dir .. "/prosody.pid"),
    "certificates = " .. lua_string(dir .. "/certs"), -- empty: no TLS on these loopback ports
    "plugin_paths = { " .. lua_string(ROOT .. "/examples/embed/prosody") .. " }",
    "run_as_root = true", -- the specs run as root; Prosody itself never switches user
    "log = { { levels = { min = \"info\" }, to = \"console\" } }",
    "interfaces = { \"127.0.0.1\" }",
    "local_interfaces = { \"127.0.0.1\" }",
    "c2s_ports = { " .. free_port() .. " }",
    "s2s_ports = { " .. free_port() .. " }",
    "http_ports = { " .. free_port() .. " }",
    "https_ports = { }",
    "c2s_direct_tls_ports = { }",
    "s2s_direct_tls_ports = { }",
    "legacy_ssl_ports = { }",
    "modules_enabled = { \"pogo\" }",
    "pogo = {",
    "  name = " .. lua_string(o.name or "prosody") .. ",",
    "  cookie = " .. lua_string(o.cookie) .. ",",
    "  seeds = " .. lua_list(o.seeds) .. ",",
    o.heartbeat_ms and ("  heartbeat_ms = " .. o.heartbeat_ms .. ",") or "",
    o.timeout_ms and ("  timeout_ms = " .. o.timeout_ms .. ",") or "",
    o.script and ("  script = " .. lua_string(ROOT .. "/" .. o.script) .. ",") or "",
    "  args = " .. lua_list(o.args) .. ",",
    "}",
    "VirtualHost \"localhost\"",
  }
  local f = assert(io.open(dir .. "/prosody.cfg.lua", "w"))
  f:write(table.concat(lines, "\n"), "\n")
  f:close()
  return dir .. "/prosody.cfg.lua"
end

local function build_dir()
  return os.getenv("BUILD") or "build"
end

--- Start a host.
-- @tparam string kind "cqueues", "prosody", "c_host" or "ticker"
-- @tparam table o `cookie`, `seeds` (addresses), `name`, `script` (relative
--  to the source tree) and `args`, `heartbeat_ms`, `timeout_ms`
-- @return {kind =, pid =, names = {...} (filled as they come), out =, err =}
function M.start(kind, o)
  local h = { kind = kind, names = {}, out = "", err = "" }
  local cmd, args = os.getenv("LUA") or "lua5.4", {}
  local function opt(k, v) if v then args[#args + 1] = k; args[#args + 1] = tostring(v) end end
  if kind == "prosody" then
    h.dir = os.tmpname()
    os.remove(h.dir)
    assert(uv.fs_mkdir(h.dir, tonumber("700", 8)))
    assert(uv.fs_mkdir(h.dir .. "/data", tonumber("700", 8)))
    assert(uv.fs_mkdir(h.dir .. "/certs", tonumber("700", 8)))
    cmd = "prosody"
    args = { "--config", prosody_config(h.dir, o), "-F" }
    -- under make asan: Prosody leaks 45 kB at exit without pogo loaded (its
    -- own C modules and libraries); look for errors, not leaks, in it (the
    -- cqueues program and the C host check pogo's leaks)
    local asan = os.getenv("ASAN_OPTIONS")
    if asan then
      o = setmetatable({ env = { ASAN_OPTIONS = asan .. ":detect_leaks=0" } }, { __index = o })
    end
  else
    if kind == "cqueues" or kind == "ticker" then
      args[1] = ROOT .. (kind == "cqueues" and "/examples/embed/cqueues/node.lua" or "/bench/support/embed_ticker.lua")
      args[2] = "--print-node"
      opt("--name", o.name or kind)
    else
      cmd = ROOT .. "/" .. build_dir() .. "/examples/pogo_c_host"
      opt("--name", o.name)
    end
    opt("--cookie", o.cookie)
    opt("--seeds", table.concat(o.seeds or {}, ","))
    opt("--heartbeat-ms", o.heartbeat_ms)
    opt("--timeout-ms", o.timeout_ms)
    if o.script then
      args[#args + 1] = ROOT .. "/" .. o.script
      for _, a in ipairs(o.args or {}) do args[#args + 1] = a end
    end
    if kind == "c_host" and os.getenv("POGO_VALGRIND") == "1" then
      table.insert(args, 1, cmd)
      for i, a in ipairs { "--quiet", "--leak-check=full", "--show-leak-kinds=definite,indirect",
                           "--errors-for-leak-kinds=definite,indirect", "--error-exitcode=87",
                           "--suppressions=" .. ROOT .. "/spec/support/valgrind.supp" } do
        table.insert(args, i, a)
      end
      cmd = "valgrind"
    end
  end
  local stdout, stderr = uv.new_pipe(false), uv.new_pipe(false)
  local handle, pid
  handle, pid = uv.spawn(cmd, { args = args, stdio = { nil, stdout, stderr }, env = M.env(o.env) },
    function(code, sig)
      h.exited = { code = code, signal = sig }
      LIVE[pid] = nil
      handle:close()
    end)
  if not handle then error("cannot start " .. cmd .. ": " .. tostring(pid)) end
  LIVE[pid] = true
  h.pid = pid
  local function scan()
    local names = {}
    for name in h.out:gmatch("POGO_NODE (%S+)\n") do names[#names + 1] = name end
    for name in h.out:gmatch("pogo node (%S+) started") do names[#names + 1] = name end
    h.names = names
  end
  stdout:read_start(function(_, data)
    if not data then stdout:close(); return end
    h.out = h.out .. data
    scan()
  end)
  stderr:read_start(function(_, data)
    if not data then stderr:close(); return end
    h.err = h.err .. data
  end)
  return h
end

--- Wait until the host reported `n` node names (raises if it exits first).
function M.wait_names(h, n, timeout_ms)
  cluster.wait_until(function()
    if h.exited then error(h.kind .. " exited: " .. h.out .. h.err, 0) end
    return #h.names >= n
  end, timeout_ms or 20000, h.kind .. " to start its node")
  return h.names
end

--- SIGTERM, then wait for the exit (SIGKILL after timeout_ms); returns the exit record.
function M.stop(h, timeout_ms)
  if not h.exited then
    uv.kill(h.pid, "sigterm")
    pcall(cluster.wait_until, function() return h.exited end, timeout_ms or 10000, h.kind .. " to exit")
  end
  M.kill(h)
  return h.exited
end

--- SIGKILL (if still running) and remove its files.
function M.kill(h)
  if not h then return end
  if not h.exited and LIVE[h.pid] then
    uv.kill(h.pid, "sigkill")
    pcall(cluster.wait_until, function() return h.exited end, 5000, h.kind .. " to exit")
  end
  if h.dir then
    os.execute("rm -rf '" .. h.dir .. "'")
    h.dir = nil
  end
end

return M
