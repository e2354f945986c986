--- Helpers of the specs that drive pogo as a host that owns its loop would
-- (spec/host_spec.lua): wait for `pogo.fd()` with LuaSocket's select (it
-- takes any object with a getfd method), step until a condition holds, and
-- start a bin/pogo peer without blocking (its stdout is read in the loop).
-- Calling any of these makes the spec's node hosted: its main chunk is host
-- code from then on.
local pogo = require "pogo"
local socket = require "socket"
local uv = require "luv"
local cluster = require "pogo.local_cluster"

local M = {}

local watched -- a LuaSocket-selectable object for pogo.fd()

--- Is pogo.fd() readable within `timeout_ms` (0: now; nil: forever)?
function M.readable(timeout_ms)
  if not watched then
    local fd = pogo.fd()
    watched = { getfd = function() return fd end, dirty = function() return false end }
  end
  local r = socket.select({ watched }, nil, timeout_ms and timeout_ms / 1000 or nil)
  return #r > 0
end

--- Step until `pred()` is true, waiting for the fd or the next timer in
-- between (as a host does), at most `timeout_ms`. Returns pred's value and
-- the number of steps taken; raises "timed out waiting for <what>".
function M.step_until(pred, timeout_ms, what)
  local deadline = uv.hrtime() + (timeout_ms or 5000) * 1e6
  local steps = 0
  while true do
    local v = pred()
    if v then return v, steps end
    local left = (deadline - uv.hrtime()) / 1e6
    if left <= 0 then error("timed out waiting for " .. (what or "a condition"), 2) end
    local t = pogo.timeout()
    if t < 0 or t > left then t = left end
    M.readable(t)
    pogo.step()
    steps = steps + 1
  end
end

local LIVE = {}
M._guard = setmetatable({}, { __gc = function() for pid in pairs(LIVE) do pcall(uv.kill, pid, "sigkill") end end })

--- Start a bin/pogo node running `script` (its args after it) without
-- blocking: the node's name comes on its stdout, read while stepping.
-- @return {name =, addr =, pid =}
function M.start_peer(script, args, opts)
  opts = opts or {}
  local node = { out = "", err = "" }
  local argv = { cluster.find_bin(), "--print-node", "--watch-stdin", "--name", opts.name or "peer",
                 "--port", "0", "--cookie", opts.cookie, "--heartbeat-ms", tostring(opts.heartbeat_ms or 1000),
                 "--timeout-ms", tostring(opts.timeout_ms or 10000), script }
  for _, a in ipairs(args or {}) do argv[#argv + 1] = a end
  local stdin, stdout, stderr = uv.new_pipe(false), uv.new_pipe(false), uv.new_pipe(false)
  local handle, pid
  handle, pid = uv.spawn(os.getenv("LUA") or "lua5.4", { args = argv, stdio = { stdin, stdout, stderr },
                                                        env = cluster.env() },
    function(code, sig)
      node.exited = { code = code, signal = sig }
      LIVE[pid] = nil
      handle:close()
    end)
  if not handle then error("cannot start bin/pogo: " .. tostring(pid)) end
  LIVE[pid] = true
  node.pid, node.stdin = pid, stdin
  stdout:read_start(function(_, data)
    if not data then stdout:close(); return end
    node.out = node.out .. data
    node.name = node.name or node.out:match("POGO_NODE (%S+)\n")
  end)
  stderr:read_start(function(_, data)
    if not data then stderr:close(); return end
    node.err = node.err .. data
  end)
  M.step_until(function() return node.name or node.exited end, 10000, "the peer to start")
  if not node.name then error("the peer did not start: " .. node.err) end
  node.addr = node.name:match("@(.*)$")
  return node
end

--- Kill a peer (SIGKILL, by pid) and step until it is gone.
function M.stop_peer(node)
  if not node or node.exited then return end
  uv.kill(node.pid, "sigkill")
  M.step_until(function() return node.exited end, 5000, "the peer to exit")
  if not node.stdin:is_closing() then node.stdin:close() end
  -- let the loop run the close callbacks: luv 1.44 crashes at exit on a
  -- handle closed but never processed by the loop
  pogo.step()
end

return M
