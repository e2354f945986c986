-- Test fixture: a configurable worker for supervisor specs.
-- start_link(name, opts): registers `name` (if given), reports its start to
-- the process registered as opts.report (if any), and obeys messages:
-- "crash" (error), "stop" (exit normal), {"exit", reason}; {"id", from} is
-- answered {"id", opts.id, its own pid} (Pogo's Worker.get_id). With
-- opts.trap it traps exits, and then ends with the reason of an exit signal,
-- or with opts.exit_with, or ignores it with opts.ignore_shutdown. With
-- opts.gate (a registered name), the start first tells the gate
-- {"starting", name or false, starter} and waits for "go" (a start that takes long).
local pogo = require "pogo"

local M = {}

function M.start_link(name, opts)
  opts = opts or {}
  if opts.fail then return nil, "refused to start" end
  if opts.raise then error("start exploded") end
  if opts.gate then
    pogo.send(opts.gate, { "starting", name or false, pogo.self() })
    pogo.receive(function(m) return m == "go" end)
  end
  local pid = pogo.spawn_link(function()
    if opts.trap then pogo.trap_exit(true) end
    if opts.report and pogo.whereis(opts.report) then
      pogo.send(opts.report, { "started", name, pogo.self() })
    end
    while true do
      local m = pogo.receive()
      if m == "crash" then error("crashed on purpose")
      elseif m == "stop" then return
      elseif type(m) == "table" and m[1] == "exit" then pogo.exit(m[2])
      elseif type(m) == "table" and m[1] == "EXIT" and opts.ignore_shutdown then -- luacheck: ignore 542
        -- a stubborn child: ignores the shutdown signal
      elseif type(m) == "table" and m[1] == "EXIT" and opts.exit_with then pogo.exit(opts.exit_with)
      elseif type(m) == "table" and m[1] == "EXIT" then pogo.exit(m[3])
      elseif type(m) == "table" and m[1] == "ping" then pogo.send(m[2], { "pong", name })
      elseif type(m) == "table" and m[1] == "id" then pogo.send(m[2], { "id", opts.id, pogo.self() })
      end
    end
  end)
  if name then pogo.register(name, pid) end
  return pid
end

function M.child_spec(arg)
  arg = arg or {}
  return { id = arg.id or "worker", start = { "support.worker", "start_link", arg.name, arg.opts },
    restart = arg.restart, shutdown = arg.shutdown }
end

return M
