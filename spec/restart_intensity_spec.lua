-- Specs for pogo.restart_intensity (the window both supervisors count restarts in).
local intensity = require "pogo.restart_intensity"

describe("pogo.restart_intensity", function()
  it("allows `intensity` restarts within the period, not one more", function()
    local w = intensity.new(3, 1000)
    assert.is_true(w:add(0))
    assert.is_true(w:add(10))
    assert.is_true(w:add(20))
    assert.is_false(w:add(30))
  end)

  it("forgets restarts older than the period", function()
    local w = intensity.new(2, 100)
    assert.is_true(w:add(0))
    assert.is_true(w:add(50))
    assert.is_false(w:add(100))
    -- at 201 the restarts at 0, 50 and 100 are all more than 100 ms old
    assert.is_true(w:add(201))
    assert.is_true(w:add(250))
    assert.is_false(w:add(260))
  end)

  it("with intensity 0 every restart is one too many", function()
    assert.is_false(intensity.new(0, 1000):add(0))
  end)
end)
