-- Codec: Lua values <-> canonical msgpack (csrc/codec.c), through core.encode,
-- core.decode and core.hash.
local core = require "pogo.core"
local encode, decode, hash = core.encode, core.decode, core.hash

local function hex(s)
  return (s:gsub(".", function(c) return string.format("%02x", c:byte()) end))
end

local function unhex(h)
  return (h:gsub("%s", ""):gsub("..", function(x) return string.char(tonumber(x, 16)) end))
end

-- Deep equality that also distinguishes integers from floats and compares
-- floats bit for bit (so NaN equals NaN and -0.0 differs from 0.0).
local function same(a, b)
  if type(a) ~= type(b) then return false end
  if type(a) == "number" then
    if math.type(a) ~= math.type(b) then return false end
    if math.type(a) == "float" then return string.pack("<d", a) == string.pack("<d", b) end
    return a == b
  end
  if type(a) ~= "table" then return a == b end
  for k, v in pairs(a) do
    if type(k) == "table" then return false end -- not comparable this way
    if not same(v, rawget(b, k)) then return false end
  end
  for k in pairs(b) do
    if rawget(a, k) == nil then return false end
  end
  return true
end

local function roundtrip(v)
  local bytes = encode(v)
  local back = decode(bytes)
  assert.is_true(same(v, back), "round trip changed " .. hex(bytes))
  assert.are.equal(bytes, encode(back))
  assert.are.equal(hash(v), hash(back))
  return back, bytes
end

local function errors_with(msg, f, ...)
  local ok, err = pcall(f, ...)
  assert.is_false(ok, "expected an error: " .. msg)
  assert.are.equal(msg, err)
end

local function malformed(bytes)
  local ok, err = pcall(decode, bytes)
  assert.is_false(ok, "decoded malformed input " .. hex(bytes))
  assert.is_truthy(tostring(err):match("^malformed message: "), tostring(err))
  return err
end

local function nest(depth, leaf)
  local v = leaf
  for _ = 1, depth do v = {v} end
  return v
end

describe("codec", function()
  describe("round trips", function()
    it("scalars", function()
      roundtrip(nil)
      roundtrip(true)
      roundtrip(false)
      for _, i in ipairs{0, 1, -1, 31, 32, -32, -33, 127, 128, -128, -129, 255, 256,
                         32767, 32768, -32768, -32769, 65535, 65536, 2147483648, -2147483648,
                         4294967296, -4294967297, math.maxinteger, math.mininteger} do
        roundtrip(i)
      end
      for _, f in ipairs{0.0, -0.0, 0.5, -1.5, 1.0, 2^53, 1e308, -1e-308, math.huge, -math.huge,
                         math.pi, 2.0^63, -2.0^63} do
        roundtrip(f)
      end
      local nan = decode(encode(0/0))
      assert.is_true(nan ~= nan)
    end)

    it("strings of every length class, binary safe", function()
      for _, n in ipairs{0, 1, 31, 32, 255, 256, 65535, 65536, 100000} do
        local s = string.rep("x", n)
        local _, bytes = roundtrip(s)
        local hdr = n < 32 and 1 or n < 256 and 2 or n < 65536 and 3 or 5
        assert.are.equal(hdr + n, #bytes)
      end
      roundtrip("a\0b\255\n\"")
      roundtrip(("\0"):rep(300))
    end)

    it("keeps floats and integers apart", function()
      assert.are.equal("float", math.type(decode(encode(1.0))))
      assert.are.equal("integer", math.type(decode(encode(1))))
      assert.are_not.equal(encode(1), encode(1.0))
      assert.are_not.equal(hash(1), hash(1.0))
      assert.are.equal("cb3ff0000000000000", hex(encode(1.0)))
      assert.are.equal(1 / decode(encode(-0.0)), -math.huge)
    end)

    it("nested tables", function()
      roundtrip({})
      roundtrip({1, 2, 3})
      roundtrip({{}, {{}}, {{{}}}})
      roundtrip({a = 1, b = {c = {d = {"e", 1.5, true}}}})
      roundtrip({[1] = "a", [3] = "c"})
      roundtrip({[-1] = 1, [0] = 2, [1.5] = 3, [true] = 4, [false] = 5, ["with space"] = 6})
      roundtrip({"$call", {1, 2}, {op = "get", key = "k1"}})
      roundtrip({list = {1, 2, 3}, map = {x = 1}, [10] = {n = 1}})
    end)

    it("tables as keys", function()
      local v = {[{1, 2}] = "a", [{x = 1}] = "b"}
      local bytes = encode(v)
      local back = decode(bytes)
      assert.are.equal(bytes, encode(back))
      local n = 0
      for k, val in pairs(back) do
        n = n + 1
        assert.are.equal("table", type(k))
        assert.are.equal(encode(k) == encode({1, 2}) and "a" or "b", val)
      end
      assert.are.equal(2, n)
      -- distinct tables with equal encodings: still deterministic
      local a = encode({[{1}] = 1, [{1}] = 2})
      for _ = 1, 20 do assert.are.equal(a, encode({[{1}] = 2, [{1}] = 1})) end
    end)

    it("empty table is an empty array; empty array and empty map decode to {}", function()
      assert.are.equal("90", hex(encode({})))
      assert.is_true(same({}, decode(unhex("90"))))
      assert.is_true(same({}, decode(unhex("80"))))
      assert.is_true(same({}, decode(unhex("de0000"))))
    end)
  end)

  describe("canonical form", function()
    it("uses the smallest integer form", function()
      local cases = {
        {0, 1}, {1, 1}, {127, 1}, {128, 2}, {255, 2}, {256, 3}, {300, 3}, {65535, 3},
        {65536, 5}, {4294967295, 5}, {4294967296, 9}, {-1, 1}, {-32, 1}, {-33, 2},
        {-128, 2}, {-129, 3}, {-32768, 3}, {-32769, 5}, {-2147483648, 5}, {-2147483649, 9},
        {math.maxinteger, 9}, {math.mininteger, 9},
      }
      for _, c in ipairs(cases) do
        assert.are.equal(c[2], #encode(c[1]), "length of " .. c[1])
      end
      assert.are.equal("01", hex(encode(1)))
      assert.are.equal("cd012c", hex(encode(300)))
      assert.are.equal("ff", hex(encode(-1)))
    end)

    it("arrays are arrays, anything else a map", function()
      assert.are.equal("93010203", hex(encode({1, 2, 3})))
      assert.are.equal(0x80, encode({[1] = 1, [3] = 3}):byte(1) & 0xf0)
      assert.are.equal(0x80, encode({[2] = 1}):byte(1) & 0xf0)
      assert.are.equal(0x80, encode({1, n = 1}):byte(1) & 0xf0)
      assert.are.equal(0x80, encode({[0] = 1}):byte(1) & 0xf0)
      assert.are.equal(0x80, encode({1, nil, 3}):byte(1) & 0xf0)
    end)

    it("recognizes arrays built out of order and tables that only start like arrays", function()
      local ref = {}
      for i = 1, 100 do ref[i] = i * 3 end
      local rev = {}
      for i = 100, 1, -1 do rev[i] = i * 3 end
      assert.are.equal(encode(ref), encode(rev))
      assert.are.equal(0xdc, encode(rev):byte(1))
      local h = {}
      for _, i in ipairs{5, 2, 4, 1, 3} do h[i] = tostring(i) end
      assert.are.equal(encode({"1", "2", "3", "4", "5"}), encode(h))
      -- a map holding the keys 1..n decodes to a table that encodes as an array
      assert.are.equal("92140a", hex(encode(decode(unhex("82020a0114")))))
      -- arrays followed by other keys are maps, with every value intact
      roundtrip({1, 2, 3, x = {4, 5, {6}}, [10] = 7})
      roundtrip({{a = 1}, {b = {1, 2}}, {c = 3}, [0] = {"zero"}})
      assert.are.equal(encode({1, 2, x = 3}), encode({x = 3, [2] = 2, [1] = 1}))
    end)

    it("encodes each value once (no blow-up on nested array-like maps)", function()
      local t = "leaf"
      for _ = 1, 60 do t = {t, x = 1} end -- each level starts like an array
      local t0 = os.clock()
      local bytes = encode(t)
      assert.are.equal(bytes, encode(decode(bytes)))
      assert.is_true(os.clock() - t0 < 2, "encoding took " .. (os.clock() - t0) .. " s")
    end)

    it("gives equal bytes for tables built in different orders", function()
      local a = {}; a.a = 1; a.b = 2
      local b = {}; b.b = 2; b.a = 1
      assert.are.equal(encode(a), encode(b))
      assert.are.equal(encode({a = 1, b = 2}), encode(a))
      assert.are.equal("82a16101a16202", hex(encode(b)))

      -- integer and string keys mixed, nested
      local x = {}; x[10] = "ten"; x.name = "n"; x[2] = {q = 1, p = 2}; x[-5] = true
      local y = {}; y[-5] = true; y[2] = {}; y[2].p = 2; y[2].q = 1; y.name = "n"; y[10] = "ten"
      assert.are.equal(encode(x), encode(y))
      assert.are.equal(hash(x), hash(y))

      -- large maps (merge sort path) in forward, backward and shuffled order
      local keys = {}
      for i = 1, 300 do keys[i] = (i % 3 == 0) and i * 7 or ("k" .. i) end
      local f, r, s = {}, {}, {}
      for i = 1, #keys do f[keys[i]] = i end
      for i = #keys, 1, -1 do r[keys[i]] = i end
      math.randomseed(7)
      local order = {}
      for i = 1, #keys do order[i] = i end
      for i = #order, 2, -1 do
        local j = math.random(i); order[i], order[j] = order[j], order[i]
      end
      for _, i in ipairs(order) do s[keys[i]] = i end
      assert.are.equal(encode(f), encode(r))
      assert.are.equal(encode(f), encode(s))
      assert.are.equal(hash(f), hash(s))
      roundtrip(f)
    end)

    it("sorts map keys by their encoded bytes", function()
      -- keys 2 (02), "a" (a161), -1 (ff) sort by byte
      assert.are.equal("83" .. "0201" .. "a16101" .. "ff01", hex(encode({[-1] = 1, a = 1, [2] = 1})))
      -- "b" (a162) sorts before "aa" (a26161): the length is in the header byte
      assert.are.equal("82" .. "a16201" .. "a2616101", hex(encode({aa = 1, b = 1})))
    end)

    it("ignores metatables", function()
      local mt = {
        __index = function() error("__index called") end,
        __pairs = function() error("__pairs called") end,
        __len = function() error("__len called") end,
      }
      local t = setmetatable({1, 2, x = 3}, mt)
      assert.are.equal(encode({1, 2, x = 3}), encode(t))
      assert.are.equal(hash({1, 2, x = 3}), hash(t))
      local proxy = setmetatable({}, {__index = {a = 1}})
      assert.are.equal("90", hex(encode(proxy)))
    end)
  end)

  describe("errors in the sender", function()
    it("names the path of functions, coroutines and userdata", function()
      errors_with("msg.handler: function cannot be sent", encode, {handler = print}, "msg")
      errors_with("msg[2].x: function cannot be sent", encode, {1, {x = print}}, "msg")
      errors_with("msg.a.b[3]: coroutine cannot be sent", encode,
        {a = {b = {1, 2, coroutine.create(print)}}}, "msg")
      errors_with("msg.f: userdata cannot be sent", encode, {f = io.stdout}, "msg")
      errors_with("value: function cannot be sent", encode, print)
      errors_with("value[1]: function cannot be sent", encode, {print})
      errors_with("req[\"with space\"]: function cannot be sent", encode, {["with space"] = print}, "req")
      errors_with("req[\"end\"]: function cannot be sent", encode, {["end"] = print}, "req")
      errors_with("req[\"a\\\"b\\n\"]: function cannot be sent", encode, {["a\"b\n"] = print}, "req")
      errors_with("req[-7]: function cannot be sent", encode, {[-7] = print, x = 1}, "req")
      errors_with("req[1.5]: function cannot be sent", encode, {[1.5] = print}, "req")
      errors_with("req[true]: function cannot be sent", encode, {[true] = print}, "req")
      errors_with("req[<key>]: function cannot be sent", encode, {[print] = 1}, "req")
      errors_with("req[<key>][1]: function cannot be sent", encode, {[{print}] = 1}, "req")
      errors_with("req[<table>].x: function cannot be sent", encode, {[{}] = {x = print}}, "req")
      errors_with("value: function cannot be sent", hash, print) -- hash names the root "value"
    end)

    it("detects cycles on the path", function()
      local t = {1, {}}
      t[2].x = t
      errors_with("msg[2].x: cycle cannot be sent", encode, t, "msg")
      local self = {}
      self.me = self
      errors_with("value.me: cycle cannot be sent", encode, self)
      local deep = {a = {b = {c = {}}}}
      deep.a.b.c.d = deep.a
      errors_with("m.a.b.c.d: cycle cannot be sent", encode, deep, "m")
      local k = {}
      k[k] = 1
      errors_with("m[<key>]: cycle cannot be sent", encode, k, "m")
      assert.has_error(function() hash(t) end, "value[2].x: cycle cannot be sent")
    end)

    it("does not mistake shared siblings for cycles", function()
      local s = {1, 2}
      local v = {s, s, {s, a = s}}
      local back = decode(encode(v))
      assert.is_true(same(back[1], s))
      assert.is_true(same(back[3].a, s))
      assert.are_not.equal(back[1], back[2])
    end)

    it("caps nesting depth when encoding", function()
      assert.is_true(same(nest(64, 1), decode(encode(nest(64, 1)))))
      encode(nest(63, {}))
      local ok, err = pcall(encode, nest(65, 1), "m")
      assert.is_false(ok)
      assert.is_truthy(err:match("^m%[1%]%[1%].*: nesting deeper than 64 cannot be sent$"), err)
      ok, err = pcall(encode, nest(64, {}), "m")
      assert.is_false(ok)
      assert.is_truthy(err:match("nesting deeper than 64"), err)
      assert.is_false(pcall(hash, nest(100, 1)))
    end)

    it("leaves the stack and state usable after errors", function()
      for _ = 1, 100 do pcall(encode, {1, {2, {x = print}}}) end
      assert.are.equal("93010203", hex(encode({1, 2, 3})))
    end)
  end)

  describe("decoding", function()
    it("caps nesting depth", function()
      assert.is_true(same(nest(64, 1), decode(("\x91"):rep(64) .. "\x01")))
      local err = malformed(("\x91"):rep(65) .. "\x01")
      assert.is_truthy(err:match("nesting deeper than 64"), err)
      malformed(("\x81\x01"):rep(65) .. "\x01")
      malformed(("\x91"):rep(100000))
    end)

    it("accepts other valid msgpack forms", function()
      assert.are.equal("abc", decode(unhex("c403616263")))       -- bin8
      assert.are.equal("abc", decode(unhex("d903616263")))       -- str8
      assert.are.equal(1.5, decode(unhex("ca3fc00000")))         -- float32
      assert.are.equal(5, decode(unhex("cd0005")))               -- uint16
      assert.are.equal(-1, decode(unhex("d3ffffffffffffffff"))) -- int64
      assert.are.equal(math.maxinteger, decode(unhex("cf7fffffffffffffff")))
      assert.is_true(same({1, 2}, decode(unhex("dc00020102"))))
      assert.is_true(same({a = 1}, decode(unhex("df00000001a16101"))))
    end)

    it("rejects malformed input", function()
      malformed("")
      malformed(unhex("a5616263"))         -- fixstr claims 5, has 3
      malformed(unhex("d9"))               -- str8 without length
      malformed(unhex("d90a61"))           -- str8 claims 10
      malformed(unhex("dbffffffff616263")) -- str32 claims 4 GB
      malformed(unhex("c6ffffffff"))       -- bin32 claims 4 GB
      malformed(unhex("930102"))           -- array of 3 with 2
      malformed(unhex("ddffffffff01"))     -- array32 claims 4G elements
      malformed(unhex("dfffffffff01"))     -- map32 claims 4G entries
      malformed(unhex("82a16101a162"))     -- map truncated
      malformed(unhex("81a161"))           -- map value missing
      malformed(unhex("c1"))               -- never used byte
      malformed(unhex("92c101"))
      malformed(unhex("cd01"))             -- truncated uint16
      malformed(unhex("cb3ff0"))           -- truncated float64
      malformed(unhex("cfffffffffffffffff")) -- uint64 above maxinteger
      malformed(unhex("d40100"))           -- extension without hooks
      malformed(unhex("c7ff01"))           -- ext8 claims 255
      malformed(unhex("0102"))             -- trailing garbage
      malformed(unhex("90ff"))
      local err = malformed(unhex("81c001"))  -- nil map key
      assert.is_truthy(err:match("nil map key"), err)
      err = malformed(unhex("81cb7ff800000000000001")) -- NaN map key
      assert.is_truthy(err:match("NaN map key"), err)
      err = malformed(unhex("82a16101a16102")) -- duplicate key
      assert.is_truthy(err:match("duplicate map key"), err)
      malformed(unhex("820101cb3ff000000000000002")) -- 1 and 1.0 are the same key
      err = malformed(unhex("0102"))
      assert.are.equal("malformed message: 1 trailing bytes at offset 1", err)
      assert.has_error(function() decode(42) end)
    end)

    it("survives thousands of random byte strings", function()
      math.randomseed(1234)
      local ok_count = 0
      for _ = 1, 20000 do
        local n = math.random(0, 24)
        local b = {}
        for i = 1, n do b[i] = string.char(math.random(0, 255)) end
        local s = table.concat(b)
        local ok, v = pcall(decode, s)
        if ok then
          ok_count = ok_count + 1
          assert.are.equal(encode(v), encode(decode(encode(v))))
        else
          assert.is_truthy(v:match("^malformed message: "), v)
        end
      end
      assert.is_true(ok_count > 0)
    end)

    it("survives mutations of valid encodings", function()
      math.randomseed(99)
      local base = encode({"$call", {1, 2}, {op = "get", key = "k1", list = {1.5, -3, "x"},
                                             nested = {a = {b = {c = "d"}}}}})
      for _ = 1, 20000 do
        local b = {base:byte(1, -1)}
        for _ = 1, math.random(1, 3) do
          local r = math.random(3)
          if r == 1 then b[math.random(#b)] = math.random(0, 255)
          elseif r == 2 and #b > 1 then table.remove(b, math.random(#b))
          else table.insert(b, math.random(#b + 1), math.random(0, 255)) end
        end
        local s = string.char(table.unpack(b))
        local ok, v = pcall(decode, s)
        if ok then
          assert.are.equal(encode(v), encode(decode(encode(v))))
        else
          assert.is_truthy(v:match("^malformed message: "), v)
        end
        -- every prefix of a valid message is malformed
      end
      for i = 0, #base - 1 do malformed(base:sub(1, i)) end
    end)
  end)

  describe("randomized round trips", function()
    local rnd = math.random
    local function rstring()
      local n = ({0, 1, 3, 8, 31, 32, 40, 300})[rnd(8)]
      local b = {}
      for i = 1, n do b[i] = string.char(rnd(0, 255)) end
      return table.concat(b)
    end
    local function rnumber()
      local r = rnd(6)
      if r == 1 then return rnd(-40, 200)
      elseif r == 2 then return rnd(math.mininteger, math.maxinteger)
      elseif r == 3 then return rnd(-70000, 70000)
      elseif r == 4 then return (rnd() - 0.5) * 10 ^ rnd(-300, 300)
      elseif r == 5 then return ({0.0, -0.0, 1.0, math.huge, -math.huge, 0/0})[rnd(6)]
      else return rnd(-5, 5) + 0.0 end
    end
    local function rkey()
      local r = rnd(5)
      if r == 1 then return rstring()
      elseif r == 2 then return ({"a", "b", "op", "key", "name", "x"})[rnd(6)]
      elseif r == 3 then return rnd(-3, 20)
      elseif r == 4 then local f = rnumber(); if f ~= f then f = 0.25 end; return f
      else return rnd(2) == 1 end
    end
    local gen
    local budget -- nodes left for the value being generated
    gen = function(depth)
      budget = budget - 1
      local r = rnd((depth > 6 or budget <= 0) and 5 or 8)
      if r == 1 then return nil
      elseif r == 2 then return rnd(2) == 1
      elseif r == 3 then return rnumber()
      elseif r == 4 or r == 5 then return rstring()
      elseif r == 6 then
        local t = {}
        for i = 1, rnd(0, 6) do t[i] = gen(depth + 1) end
        return t
      elseif r == 7 then
        local t = {}
        for _ = 1, rnd(0, 20) do
          local k = rkey()
          if k ~= nil then t[k] = gen(depth + 1) end
        end
        return t
      else
        local t = {}
        for i = 1, rnd(0, 4) do t[i] = gen(depth + 1) end
        t[rkey()] = gen(depth + 1)
        return t
      end
    end

    it("encode/decode/hash agree on thousands of random values", function()
      math.randomseed(20240611)
      for _ = 1, 3000 do
        budget = rnd(1, 60)
        local v = gen(0)
        local bytes = encode(v)
        local back = decode(bytes)
        assert.is_true(same(v, back), "mismatch for " .. hex(bytes))
        assert.are.equal(bytes, encode(back))
        assert.are.equal(hash(v), hash(back))
        assert.are.equal(hash(v, 99), hash(back, 99))
        -- a copy built in another order encodes identically
        if type(v) == "table" then
          local keys = {}
          for k in pairs(v) do keys[#keys + 1] = k end
          local copy = {}
          for i = #keys, 1, -1 do copy[keys[i]] = v[keys[i]] end
          assert.are.equal(bytes, encode(copy))
        end
      end
    end)
  end)

  describe("hash", function()
    it("is an integer, depends on the seed, equal for equal values", function()
      assert.are.equal("integer", math.type(hash("abc")))
      assert.are_not.equal(hash("abc"), hash("abc", 1))
      assert.are.equal(hash("abc", 1), hash("abc", 1))
      assert.are_not.equal(hash("abc"), hash("abd"))
      assert.are_not.equal(hash({1}), hash({1.0}))
      local a = {}; a.x = {1, 2}; a.y = "z"
      local b = {}; b.y = "z"; b.x = {1, 2}
      assert.are.equal(hash(a), hash(b))
      assert.are.equal(hash(a), hash(decode(encode(a))))
    end)

    it("hashes long strings (streamed) and big tables (heap) consistently", function()
      local s = ("long string "):rep(1000)
      assert.are.equal(hash(s), hash(decode(encode(s))))
      assert.are.equal(hash(s, 5), hash(s .. "", 5))
      local big = {}
      for i = 1, 1000 do big["k" .. i] = {i, tostring(i)} end
      assert.are.equal(hash(big), hash(decode(encode(big))))
      for _, v in ipairs{"", "a", ("x"):rep(255), ("x"):rep(256), ("x"):rep(70000), 0, -1,
                         math.maxinteger, 1.5, true, false} do
        assert.are.equal(hash(v), hash(decode(encode(v))))
      end
      assert.are.equal(hash(nil), hash(decode(encode(nil))))
    end)
  end)

  describe("messages", function()
    it("encode in table order, decode to the same value, and stop at max_bytes", function()
      local t = {}
      for i = 1, 1000 do t["k" .. i] = { i, "v" .. i } end
      local msg = encode(t, "msg", 0, true)
      assert.are.equal(#encode(t), #msg)
      assert.is_true(same(t, decode(msg)))
      assert.are.equal(msg, encode(t, "msg", #msg, true))
      local ok, err = pcall(encode, t, "msg", #msg - 1, true)
      assert.is_false(ok)
      assert.matches("^msg: too large to be sent %(more than " .. (#msg - 1) .. " bytes%)", err)
      ok, err = pcall(encode, ("x"):rep(100), "msg", 50, true)
      assert.is_false(ok)
      assert.matches("too large to be sent", err)
      ok, err = pcall(encode, { 1, 2, function() end }, "msg", 1000, true)
      assert.is_false(ok)
      assert.matches("msg%[3%]: function cannot be sent", err)
    end)

    it("price a decode in Lua heap before it is made", function()
      local function heap(v)
        local bytes = encode(v)
        collectgarbage()
        collectgarbage("stop")
        local before = collectgarbage("count")
        local d = decode(bytes)
        local used = (collectgarbage("count") - before) * 1024
        collectgarbage("restart")
        return used, d
      end
      for _, v in ipairs { { 1, 2, 3 }, ("x"):rep(1000), { a = 1, b = { c = "dd" } },
                           (function() local a = {} for i = 1, 10000 do a[i] = true end return a end)() } do
        local est, real = core.estimate(encode(v)), heap(v)
        -- (an upper bound, near for big values: short strings already interned cost nothing)
        assert.is_true(est >= real * 0.9 and est <= real * 1.2 + 256, est .. " for " .. real)
      end
      assert.are.equal(16 * 1000000 + 56 < core.estimate(unhex("dd000f4240") .. ("\xc3"):rep(1000000)) + 1, true)
      assert.is_nil(core.estimate(unhex("dd000f4240c3")))
    end)
  end)
end)

