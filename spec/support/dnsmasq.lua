--- A real DNS server for the discovery specs: Debian's dnsmasq on 127.0.0.1
-- at an ephemeral port, authoritative for `pogo.test`, started by the spec
-- and stopped by pid.
--
--   local dns = dnsmasq.start { hosts = { "127.0.0.2 nodes.pogo.test" },
--                               extra = { "--srv-host=_pogo._tcp.pogo.test,s1.pogo.test,4000" } }
--   dns.port                       -- its UDP/TCP port
--   dns.set_hosts { ... }; dns.reload()  -- rewrite the hosts file, SIGHUP, wait until re-read
--   dns.stop()
--
-- Host records live in a file given with --addn-hosts, which dnsmasq reads
-- again on SIGHUP (its log line "read <file> - N names" says when: reload
-- waits for it), so a spec adds and removes records at run time. Other
-- records (SRV, --host-record) are fixed at start. Every wait is bounded.
local uv = require "luv"
local pogo = require "pogo"
local cluster = require "support.cluster"
local certs = require "pogo.local_cluster.certs"

local M = {}

-- Debian's dnsmasq-base installs it in /usr/sbin, often not on a user's PATH
local DNSMASQ = "dnsmasq"
do
  local f = io.open("/usr/sbin/dnsmasq")
  if f then
    f:close()
    DNSMASQ = "/usr/sbin/dnsmasq"
  end
end

local function spew(path, lines)
  local f = assert(io.open(path, "w"))
  f:write(table.concat(lines, "\n"), "\n")
  f:close()
end

-- A UDP port free on 127.0.0.1 right now.
local function free_port()
  local u = uv.new_udp()
  assert(u:bind("127.0.0.1", 0))
  local port = u:getsockname().port
  u:close()
  return port
end

local function whoami()
  local p = io.popen("id -un")
  local name = p:read("l")
  p:close()
  return name
end

-- dns:stop_process(): kill dnsmasq (by pid) and wait for it.
local function stop_process(dns)
  if dns.handle and not dns.exited then
    uv.kill(dns.pid, "sigkill")
    pcall(cluster.wait_until, function() return dns.exited end, 2000, "dnsmasq to exit")
  end
  if dns.err and not dns.err:is_closing() then dns.err:close() end
  pogo.sleep(10)
end

local function count_reads(dns)
  local _, n = dns.log:gsub("read " .. dns.hosts_file:gsub("%p", "%%%0"), "")
  return n
end

-- One try at running dnsmasq on a fresh port: true once it serves.
local function run(dns, extra)
  dns.port = free_port()
  local args = { "--keep-in-foreground", "--no-resolv", "--no-hosts", "--conf-file=/dev/null",
                 "--port=" .. dns.port, "--listen-address=127.0.0.1", "--bind-interfaces", "--pid-file=",
                 "--user=" .. whoami(), "--local=/pogo.test/", "--log-facility=-",
                 "--addn-hosts=" .. dns.hosts_file }
  for _, x in ipairs(extra or {}) do args[#args + 1] = x end
  local err = uv.new_pipe(false)
  dns.log, dns.exited = "", nil
  local handle, pid
  -- its own environment: not this process's sanitizer preloads (make asan), under which it hangs
  handle, pid = uv.spawn(DNSMASQ, { args = args, stdio = { nil, nil, err },
                                      env = { "PATH=" .. (os.getenv("PATH") or "/usr/sbin:/usr/bin:/sbin:/bin") } },
                         function(code)
    dns.exited = code
    handle:close()
  end)
  if not handle then
    err:close()
    error("cannot start dnsmasq: " .. tostring(pid))
  end
  dns.pid, dns.handle, dns.err = pid, handle, err
  err:read_start(function(_, data)
    if data then dns.log = dns.log .. data elseif not err:is_closing() then err:close() end
  end)
  local ok = pcall(cluster.wait_until, function() return dns.exited or count_reads(dns) > 0 end, 5000,
                   "dnsmasq to start")
  if ok and not dns.exited then return true end
  stop_process(dns)
  return false
end

--- Start dnsmasq. opts: `hosts` (lines of its hosts file, "ip name"),
-- `extra` (more options, e.g. --srv-host=..., --host-record=...).
function M.start(opts)
  opts = opts or {}
  local dir = certs.tmpdir()
  local dns = { dir = dir, hosts_file = dir .. "/hosts", log = "" }
  spew(dns.hosts_file, opts.hosts or {})
  local ok, started = false, false
  for _ = 1, 5 do
    ok, started = pcall(run, dns, opts.extra)
    if not ok or started then break end
  end
  if not ok or not started then
    certs.remove(dir)
    error("dnsmasq did not start: " .. (ok and dns.log or tostring(started)))
  end

  --- Rewrite the hosts file (lines "ip name").
  function dns.set_hosts(lines) spew(dns.hosts_file, lines) end

  --- SIGHUP, and wait until dnsmasq has read its hosts file again.
  function dns.reload()
    local before = count_reads(dns)
    uv.kill(dns.pid, "sighup")
    cluster.wait_until(function() return count_reads(dns) > before end, 5000,
      "dnsmasq to read its hosts file again")
  end

  --- Kill dnsmasq (by pid) and remove its files.
  function dns.stop()
    stop_process(dns)
    certs.remove(dns.dir)
  end
  return dns
end

return M
