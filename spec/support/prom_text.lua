--- A strict reader of Prometheus' text exposition format (version 0.0.4),
-- for the /metrics specs (besides `promtool check metrics` when Debian's
-- prometheus package is there). It raises, naming the line, on anything the
-- format does not allow: a bad metric or label name, a bad escape, a value
-- Go's ParseFloat would not read, a TYPE after its samples or twice, a
-- family split in two, a sample repeated with the same labels, a counter
-- without the _total suffix, a HELP or TYPE of another shape.
--
--   local prom = require "support.prom_text"
--   local fams = prom.parse(text)  -- name -> {type =, help =, samples = {{labels =, value =}, ...}}
local M = {}

local NAME = "^[a-zA-Z_:][a-zA-Z0-9_:]*$"
local LABEL = "^[a-zA-Z_][a-zA-Z0-9_]*$"
local TYPES = { counter = true, gauge = true, histogram = true, summary = true, untyped = true }

local function number(s)
  if s == "NaN" or s == "+Inf" or s == "-Inf" then return true end
  return s:match("^[+-]?%d+%.?%d*[eE][+-]?%d+$") or s:match("^[+-]?%d+%.?%d*$") or s:match("^[+-]?%.%d+$")
end

-- Labels "{a="x",b="y"}" from position i: table, next position.
local function labels(line, i, n)
  local out, keys = {}, {}
  i = i + 1
  if line:sub(i, i) == "}" then return out, i + 1, "" end
  while true do
    local name, j = line:match("^([^=]+)=()", i)
    if not name or not name:match(LABEL) then error("line " .. n .. ": bad label name in: " .. line) end
    if out[name] then error("line " .. n .. ": label " .. name .. " repeated") end
    if line:sub(j, j) ~= '"' then error("line " .. n .. ": label value not quoted: " .. line) end
    j = j + 1
    local v = {}
    while true do
      local c = line:sub(j, j)
      if c == "" then error("line " .. n .. ": label value not closed: " .. line) end
      if c == '"' then break end
      if c == "\\" then
        local e = line:sub(j + 1, j + 1)
        if e == "\\" or e == '"' then v[#v + 1] = e elseif e == "n" then v[#v + 1] = "\n"
        else error("line " .. n .. ": bad escape \\" .. e) end
        j = j + 2
      else
        v[#v + 1] = c
        j = j + 1
      end
    end
    out[name] = table.concat(v)
    keys[#keys + 1] = name
    j = j + 1
    local c = line:sub(j, j)
    if c == "}" then
      table.sort(keys)
      local sig = {}
      for _, k in ipairs(keys) do sig[#sig + 1] = k .. "=" .. out[k] end
      return out, j + 1, table.concat(sig, "\0")
    end
    if c ~= "," then error("line " .. n .. ": , or } expected after a label: " .. line) end
    i = j + 1
  end
end

--- Parse and check `text`; raises on the first problem.
-- @treturn table families by name
function M.parse(text)
  if text:sub(-1) ~= "\n" then error("the text does not end with a line feed") end
  local fams, order, current = {}, {}, nil
  local function fam(name)
    local f = fams[name]
    if not f then
      f = { name = name, samples = {}, seen = {} }
      fams[name] = f
      order[#order + 1] = name
    end
    return f
  end
  local n = 0
  for line in text:gmatch("([^\n]*)\n") do
    n = n + 1
    if line:match("^#") then
      local kind, name, rest = line:match("^# (%u+) (%S+) ?(.*)$")
      if kind == "HELP" or kind == "TYPE" then
        if not name:match(NAME) then error("line " .. n .. ": bad metric name " .. name) end
        local f = fam(name)
        if #f.samples > 0 then error("line " .. n .. ": " .. kind .. " of " .. name .. " after its samples") end
        if current and current ~= name and f.closed then error("line " .. n .. ": family " .. name .. " split") end
        if kind == "TYPE" then
          if f.type then error("line " .. n .. ": TYPE of " .. name .. " twice") end
          if not TYPES[rest] then error("line " .. n .. ": unknown type " .. rest) end
          if rest == "counter" and not name:match("_total$") then
            error("line " .. n .. ": counter " .. name .. " without the _total suffix")
          end
          f.type = rest
        else
          if f.help then error("line " .. n .. ": HELP of " .. name .. " twice") end
          f.help = rest
        end
        if current and current ~= name then fams[current].closed = true end
        current = name
      end
    elseif line:match("^%s*$") then
      error("line " .. n .. ": empty line")
    else
      local name, i = line:match("^([a-zA-Z_:][a-zA-Z0-9_:]*)()")
      if not name then error("line " .. n .. ": bad sample: " .. line) end
      local f = fam(name)
      if f.closed then error("line " .. n .. ": family " .. name .. " split") end
      if current and current ~= name then fams[current].closed = true end
      current = name
      local lbl, sig = {}, ""
      if line:sub(i, i) == "{" then lbl, i, sig = labels(line, i, n) end
      local value, ts = line:sub(i):match("^ (%S+) ?(%S*)$")
      if not value or not number(value) then error("line " .. n .. ": bad value in: " .. line) end
      if ts ~= "" and not ts:match("^%-?%d+$") then error("line " .. n .. ": bad timestamp in: " .. line) end
      if f.seen[sig] then error("line " .. n .. ": sample repeated: " .. line) end
      f.seen[sig] = true
      f.samples[#f.samples + 1] = { labels = lbl, value = tonumber(value) or (value == "NaN" and 0 / 0)
                                    or (value == "+Inf" and math.huge) or -math.huge }
    end
  end
  for _, name in ipairs(order) do
    local f = fams[name]
    f.seen, f.closed = nil, nil
  end
  return fams
end

--- The sum of the samples of family `name` whose labels include `match`.
function M.sum(fams, name, match)
  local f = fams[name]
  if not f then return nil end
  local s = 0
  for _, smp in ipairs(f.samples) do
    local ok = true
    for k, v in pairs(match or {}) do ok = ok and smp.labels[k] == v end
    if ok then s = s + smp.value end
  end
  return s
end

return M
