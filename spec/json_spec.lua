-- Specs for pogo.json: lua-cjson, with lists marked by `array` written [] when empty.
local json = require "pogo.json"

describe("pogo.json", function()
  it("writes an empty list [] and an empty map {}", function()
    assert.are.equal("[]", json.encode(json.array()))
    assert.are.equal("{}", json.encode({}))
    local text = json.encode({ list = json.array({}), map = {}, nested = { json.array(), { x = json.array() } } })
    local back = json.decode(text)
    assert.matches('"list":[]', text, 1, true)
    assert.matches('"map":{}', text, 1, true)
    assert.matches('"nested":[[],{"x":[]}]', text, 1, true)
    assert.are.same({}, back.list)
    assert.is_nil(text:find("pogo.json", 1, true), "no placeholder left")
  end)

  it("writes a list that is not empty as lua-cjson does, and leaves the value as it was", function()
    local t = json.array({ 1, "a", { b = json.array() } })
    assert.are.equal('[1,"a",{"b":[]}]', json.encode(t))
    assert.is_true(json.is_array(t))
    assert.is_true(json.is_array(t[3].b))
    assert.is_false(json.is_array({}))
  end)

  it("writes valid UTF-8 whatever bytes the strings hold", function()
    local text = json.encode({ ["k\xff"] = json.array({ "a\xffb", "\xe2\x82", "ok \u{20ac}", "\xed\xa0\x80" }) })
    assert.is_not_nil(utf8.len(text), text)
    local back = json.decode(text)
    assert.are.same({ "a\u{ff}b", "\u{e2}\u{82}", "ok \u{20ac}", "\u{ed}\u{a0}\u{80}" }, back["k\u{ff}"])
    assert.are.equal("x?y?", json.utf8_valid("x\xc0y\x80", function() return "?" end))
    assert.are.equal("fine \u{20ac}", json.utf8_valid("fine \u{20ac}", error))
  end)

  it("raises on a bad argument or a value JSON cannot hold", function()
    assert.has_error(function() json.array("x") end, "pogo.json.array: t must be a table, got string")
    local cycle = {}
    cycle.self = cycle
    assert.has_error(function() json.encode(cycle) end)
    assert.has_error(function() json.encode({ f = print }) end)
  end)
end)
