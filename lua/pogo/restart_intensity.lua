--- Restart intensity, as OTP's supervisors count it: at most `intensity`
-- restarts within any `period_ms`.
--
-- A window keeps the times of the restarts of the last `period_ms`; `add`
-- counts one more and says whether the count is still within `intensity`.
-- `pogo.supervisor` keeps one window for all its children and gives up beyond
-- it; `pogo.dynamic_supervisor` keeps one per child, which backs off beyond it.
-- @module pogo.restart_intensity
local M = {}

local Window = {}
Window.__index = Window

--- A new window, with no restart in it.
-- @tparam integer intensity restarts allowed within `period_ms`
-- @tparam number period_ms
-- @treturn table the window
function M.new(intensity, period_ms)
  return setmetatable({ intensity = intensity, period = period_ms }, Window)
end

--- Count a restart at time `now` (ms, `pogo.now()`).
-- @tparam number now
-- @treturn boolean whether the restarts within the period are at most `intensity`
function Window:add(now)
  local n, kept = #self, 0
  for i = 1, n do
    local t = self[i]
    if now - t <= self.period then
      kept = kept + 1
      self[kept] = t
    end
  end
  for i = n, kept + 1, -1 do self[i] = nil end
  kept = kept + 1
  self[kept] = now
  return kept <= self.intensity
end

return M
