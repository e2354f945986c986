--- Where a node spends its time: a profiler of the Lua code of its processes.
--
--     local profile = require "pogo.profile"
--     assert(profile.start())
--     ... -- the work to look at
--     print(profile.format(profile.stop(), 20))
--
--     -- or on another node, for 2 s:
--     local ok, report = pogo.rpc(node, "pogo.profile", "run", { 2000 })
--
-- While a profile runs, each process's coroutine carries a line hook: each
-- line gets the time from its start to the start of the next line run in
-- the same slice, or to the slice's end (`csrc/profile.c`). So a line's
-- time holds the Lua code of the line, the C functions it called (the
-- codec, pg's index, `table.sort`, a send) and the collector's steps that
-- its allocations paid for; a process that waits in `pogo.receive` is not
-- running, and that wait is in no line. The report also tells how much of
-- the wall time the processes ran at all (`slices_ms`): the rest is the
-- scheduler, the transport, I/O and idle time.
--
-- The hook costs some 150 ns a line while the profile runs, so Lua code
-- runs several times slower (C code does not); its own work is kept out of
-- the lines, so the shares stay close to right. One profile runs at a time
-- on a node. Erlang users: as `eprof`/`fprof` over a whole node, by line.
-- @module pogo.profile
local pogo = require "pogo"
local uv = require "luv"

local core = pogo.core

local M = {}

--- Start profiling this node.
-- @return true, or nil and a reason ("a profile runs already on this node", ...)
function M.start()
  return core.profile_start()
end

--- Stop the profile and report it.
-- @return the report `{wall_ms =, slices_ms =, outside_ms =, lines = {{where =, fn =, ms =}, ...}}`,
--   lines by time, the longest first (`where` is "file:line", `fn` the
--   function's name when Lua knows it; `outside_ms`: the time of slices
--   that is in no line, before their first line and in the hook's own work),
--   or nil and "no profile runs on this node"
function M.stop()
  local report, err = core.profile_stop()
  if not report then return nil, err end
  table.sort(report.lines, function(a, b)
    if a.ms ~= b.ms then return a.ms > b.ms end
    return a.where < b.where
  end)
  return report
end

--- Profile this node for `ms` milliseconds (from any process; for `pogo.rpc`).
-- @tparam number ms
-- @return the report, or nil and a reason
function M.run(ms)
  if type(ms) ~= "number" or ms < 0 then error("profile.run: ms must be a number >= 0, got " .. tostring(ms), 2) end
  local ok, err = M.start()
  if not ok then return nil, err end
  -- (a timer counts from the loop's cached time, and may end a little early)
  local deadline = uv.hrtime() + ms * 1e6
  repeat
    pogo.sleep(math.max(1, math.ceil((deadline - uv.hrtime()) / 1e6)))
  until uv.hrtime() >= deadline
  return M.stop()
end

--- The time per file, the longest first.
-- @tparam table report a report of `stop`
-- @treturn {{file =, ms =},...}
function M.by_file(report)
  local sum = {}
  for _, l in ipairs(report.lines) do
    local file = l.where:match("^(.*):%-?%d+$") or l.where
    sum[file] = (sum[file] or 0) + l.ms
  end
  local out = {}
  for file, ms in pairs(sum) do out[#out + 1] = { file = file, ms = ms } end
  table.sort(out, function(a, b)
    if a.ms ~= b.ms then return a.ms > b.ms end
    return a.file < b.file
  end)
  return out
end

--- A report as text: the totals, the `n` longest files and the `n` longest lines.
-- @tparam table report
-- @tparam[opt=15] integer n
-- @treturn string
function M.format(report, n)
  n = n or 15
  local total = report.slices_ms > 0 and report.slices_ms or 1
  local out = {
    string.format("%.1f ms of wall time; processes ran %.1f ms (%.0f %%), %.1f ms of it in no line",
      report.wall_ms, report.slices_ms, report.slices_ms * 100 / math.max(report.wall_ms, 1e-9), report.outside_ms),
  }
  for i, f in ipairs(M.by_file(report)) do
    if i > n then break end
    out[#out + 1] = string.format("%6.1f %%  %9.2f ms  %s", f.ms * 100 / total, f.ms, f.file)
  end
  for i, l in ipairs(report.lines) do
    if i > n then break end
    out[#out + 1] = string.format("%6.1f %%  %9.2f ms  %s%s", l.ms * 100 / total, l.ms, l.where,
      l.fn and (" (" .. l.fn .. ")") or "")
  end
  return table.concat(out, "\n")
end

return M
