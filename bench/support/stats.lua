--- What the benchmarks compute over their samples, in one place: medians,
-- percentiles, rates as text, the live Lua heap, milliseconds since a mark,
-- and the table of rows some of them print.
local uv = require "luv"

local M = {}

--- The median of `xs` (not changed), with its minimum and maximum.
-- @tparam {number,...} xs samples (at least one)
-- @treturn number median
-- @treturn number min
-- @treturn number max
function M.median(xs)
  local s = { table.unpack(xs) }
  table.sort(s)
  return s[(#s + 1) // 2], s[1], s[#s]
end

--- The `p` percentile (0 < p <= 1) of an already sorted list (nearest rank).
function M.percentile(sorted, p)
  return sorted[math.max(1, math.min(#sorted, math.ceil(#sorted * p)))]
end

--- A rate as text: "1.23M/s", "456k/s" or "789/s".
function M.rate(x)
  if x >= 1e6 then return string.format("%.2fM/s", x / 1e6) end
  if x >= 1e4 then return string.format("%.0fk/s", x / 1e3) end
  return string.format("%.0f/s", x)
end

--- The live Lua heap in bytes, after two full collections.
function M.heap()
  collectgarbage("collect")
  collectgarbage("collect")
  return collectgarbage("count") * 1024
end

--- Add a row {what, value, note} to `rows` (a table printed by `print_rows`).
function M.row(rows, what, value, note)
  rows[#rows + 1] = { what, value, note or "" }
end

--- Print `rows`: the names left-aligned, the values right-aligned, each
-- column as wide as its widest cell, then the notes.
function M.print_rows(rows)
  local w1, w2 = 0, 0
  for _, r in ipairs(rows) do
    w1 = math.max(w1, #r[1])
    w2 = math.max(w2, #r[2])
  end
  for _, r in ipairs(rows) do
    print(string.format("%-" .. w1 .. "s  %" .. w2 .. "s  %s", r[1], r[2], r[3]))
  end
end

--- Milliseconds since `t0` (a `uv.hrtime()` value).
function M.ms_since(t0) return (uv.hrtime() - t0) / 1e6 end

return M
