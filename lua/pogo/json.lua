--- JSON for the tools (`bin/pogo ... --json`, the web page's `/api/*`):
-- lua-cjson, with lists that stay lists when they are empty.
--
-- lua-cjson writes an empty table as `{}`, and Debian's lua-cjson (2.1.0)
-- has no `array_mt` to say otherwise. A table marked with `array` is written
-- `[]` when empty; every other empty table stays `{}` (an empty object), so
-- nothing changes for maps. `encode` copies the value, putting a placeholder
-- string (random, so no data holds it) where a marked table is empty, and
-- swaps the placeholder's text for `[]`.
-- @module pogo.json
local cjson = require "cjson"

local M = {}

local ARRAY = { __name = "pogo.json.array" }
local MAX_DEPTH = 1000 -- as lua-cjson's default

local PLACEHOLDER = string.format("\1pogo.json.empty_array.%08x%08x\1", math.random(0, 0x7fffffff),
  math.random(0, 0x7fffffff))
local ENCODED = cjson.encode(PLACEHOLDER)
local PATTERN = ENCODED:gsub("%p", "%%%0")

--- Mark `t` as a list: `encode` writes it `[]` when it is empty.
-- @tparam[opt] table t (a new table when nil)
-- @treturn table t
function M.array(t)
  if t == nil then t = {} end
  if type(t) ~= "table" then error("pogo.json.array: t must be a table, got " .. type(t), 2) end
  return setmetatable(t, ARRAY)
end

--- Whether `t` is marked as a list.
-- @param t
-- @treturn boolean
function M.is_array(t)
  return type(t) == "table" and getmetatable(t) == ARRAY
end

local marked -- whether the value being copied holds an empty list

local function copy(v, depth)
  if type(v) ~= "table" then return v end
  if depth > MAX_DEPTH then error("pogo.json.encode: nesting deeper than " .. MAX_DEPTH .. " (a cycle?)", 0) end
  if getmetatable(v) == ARRAY and next(v) == nil then
    marked = true
    return PLACEHOLDER
  end
  local out = {}
  for k, x in pairs(v) do out[k] = copy(x, depth + 1) end
  return out
end

--- `s` with every byte that is not part of valid UTF-8 (a stray
-- continuation byte, a cut or overlong sequence, a surrogate, past U+10FFFF)
-- replaced by `repl(byte)`; `s` itself when it is valid.
-- @tparam string s
-- @tparam function repl byte (an integer) -> text
-- @treturn string
function M.utf8_valid(s, repl)
  local ok, bad = utf8.len(s)
  if ok then return s end
  local out, i = {}, 1
  while bad do
    out[#out + 1] = s:sub(i, bad - 1)
    out[#out + 1] = repl(s:byte(bad))
    i = bad + 1
    bad = select(2, utf8.len(s, i))
  end
  out[#out + 1] = s:sub(i)
  return table.concat(out)
end

local function json_byte(b) return string.format("\\u%04x", b) end

--- `v` as JSON text (lua-cjson's `encode`, lists marked with `array` written
-- `[]` when empty). Raises what lua-cjson raises (a function, a cycle). The
-- text is valid UTF-8: a byte of a string that is not (lua-cjson passes
-- bytes on as they are) is written as the code point of its value
-- (`"\xff"` as `"\u00ff"`).
-- @param v
-- @treturn string
function M.encode(v)
  marked = false
  local c = copy(v, 0)
  local text = cjson.encode(c)
  if marked then text = text:gsub(PATTERN, "[]") end
  return M.utf8_valid(text, json_byte)
end

--- JSON text as a value (lua-cjson's `decode`).
-- @tparam string text
-- @return the value
M.decode = cjson.decode

return M
