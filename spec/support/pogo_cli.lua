--- Run bin/pogo as a real OS process to completion and collect what it said.
--
--   local cli = require "support.pogo_cli"
--   local code, out, err = cli.run { "--version" }
--
-- The process gets the spec's module paths (local_cluster's env) and no
-- stdin. The wait is bounded: a process still running after `timeout_ms` is
-- SIGKILLed and the call raises. It returns only once the process has exited
-- and both of its output pipes have reached end of file, so nothing it wrote
-- is missed.
local pogo = require "pogo"
local uv = require "luv"
local cluster = require "pogo.local_cluster"

local M = {}

--- Run `bin/pogo args...`.
-- @tparam table args the arguments
-- @tparam[opt] table opts `env` (more environment, name -> value), `prefix`
--  (a command and its arguments to run bin/pogo under, e.g. setpriv),
--  `timeout_ms` (10000), `stdin` (bytes written to its stdin, then closed)
-- @return exit code, stdout, stderr, signal
function M.run(args, opts)
  opts = opts or {}
  local me, tag = pogo.self(), {}
  local argv = {}
  for _, a in ipairs(opts.prefix or {}) do argv[#argv + 1] = a end
  argv[#argv + 1] = os.getenv("LUA") or "lua5.4"
  argv[#argv + 1] = cluster.find_bin()
  for _, a in ipairs(args) do argv[#argv + 1] = a end
  local file = table.remove(argv, 1)
  local out, err = uv.new_pipe(false), uv.new_pipe(false)
  local input = opts.stdin and uv.new_pipe(false)
  local buf = { "", "" }
  local handle, pid
  handle, pid = uv.spawn(file, { args = argv, stdio = { input, out, err }, env = cluster.env(opts.env) },
    function(code, signal)
      handle:close()
      pogo.send(me, { tag, "exit", code, signal })
    end)
  assert(handle, pid)
  if input then
    input:write(opts.stdin)
    input:shutdown(function() input:close() end)
  end
  for i, p in ipairs { out, err } do
    p:read_start(function(_, data)
      if data then
        buf[i] = buf[i] .. data
      else
        p:close()
        pogo.send(me, { tag, "eof" })
      end
    end)
  end
  local deadline = uv.now() + (opts.timeout_ms or 10000)
  local code, signal, eofs = nil, nil, 0
  while code == nil or eofs < 2 do
    local m = pogo.receive(function(msg) return msg[1] == tag end, math.max(deadline - uv.now(), 0))
    if not m then
      uv.kill(pid, "sigkill")
      error(string.format("bin/pogo %s did not finish in time; stderr so far: %s", table.concat(args, " "), buf[2]), 2)
    end
    if m[2] == "exit" then code, signal = m[3], m[4] else eofs = eofs + 1 end
  end
  return code, buf[1], buf[2], signal
end

return M
