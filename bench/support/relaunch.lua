--- bench/support/relaunch.lua: the shell command that runs the running
-- script again (its interpreter, the script, and the arguments given), each
-- word quoted for /bin/sh. A bench uses it to take a measure in a fresh
-- node process (bench/local.lua) or to run itself under taskset
-- (bench/embed.lua).
local M = {}

--- A word quoted for /bin/sh.
-- @tparam string s
-- @treturn string
function M.quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

--- The command: interpreter and script, then `extra` (words already quoted,
-- or nil for the script's own arguments).
-- @tparam[opt] {string,...} extra
-- @treturn string
function M.command(extra)
  local i = -1
  while arg[i - 1] do i = i - 1 end
  local words = {}
  for j = i, 0 do words[#words + 1] = M.quote(arg[j]) end
  if extra then
    for _, w in ipairs(extra) do words[#words + 1] = w end
  else
    for j = 1, #arg do words[#words + 1] = M.quote(arg[j]) end
  end
  return table.concat(words, " ")
end

return M
