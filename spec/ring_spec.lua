-- pogo.ring: consistent hash ring (csrc/ring.c).
local ring = require "pogo.ring"
local core = require "pogo.core"

-- Deterministic shuffle (Lua's math.random is seeded randomly in 5.4).
local function shuffled(list, seed)
  local t, x = {}, seed
  for i, v in ipairs(list) do t[i] = v end
  for i = #t, 2, -1 do
    x = (x * 1103515245 + 12345) % 2147483648
    local j = x % i + 1
    t[i], t[j] = t[j], t[i]
  end
  return t
end

local function node_names(n)
  local t = {}
  for i = 1, n do t[i] = string.format("pogo%d@10.0.0.%d:4370", i, i) end
  return t
end

local function some_keys(n)
  local t = {}
  for i = 1, n do
    local m = i % 4
    if m == 0 then t[i] = "key:" .. i
    elseif m == 1 then t[i] = i * 7919
    elseif m == 2 then t[i] = {"worker", i}
    else t[i] = {id = i, kind = "job", tags = {"x", i % 3}} end
  end
  return t
end

local function owners(r, keys)
  local t = {}
  for i, k in ipairs(keys) do t[i] = r:key_to_node(k) end
  return t
end

local function count_by_node(r, keys)
  local c = {}
  for _, k in ipairs(keys) do
    local n = r:key_to_node(k)
    c[n] = (c[n] or 0) + 1
  end
  return c
end

describe("pogo.ring", function()
  describe("new", function()
    it("makes an empty ring with the default vnodes", function()
      local r = ring.new()
      assert.are.equal(0, #r)
      assert.are.equal(0, r:size())
      assert.are.same({}, r:nodes())
      assert.are.equal(ring.DEFAULT_VNODES, r:vnodes())
      assert.are.equal(2048, ring.DEFAULT_VNODES)
      assert.are.equal(7, ring.new{vnodes = 7}:vnodes())
      assert.matches("^pogo%.ring %(0 nodes, 0 points, vnodes 2048%)$", tostring(r))
    end)

    it("rejects bad options", function()
      for _, v in ipairs{0, -1, 1.5, "8", 2 ^ 21, true} do
        assert.error_matches(function() ring.new{vnodes = v} end,
          "vnodes must be an integer in 1%.%.1048576")
      end
      assert.has_error(function() ring.new(5) end)
    end)
  end)

  describe("empty ring", function()
    it("key_to_node and key_to_nodes return nil, 'empty ring'", function()
      local r = ring.new()
      local n, err = r:key_to_node("x")
      assert.is_nil(n)
      assert.are.equal("empty ring", err)
      n, err = r:key_to_nodes({"worker", 1}, 3)
      assert.is_nil(n)
      assert.are.equal("empty ring", err)
    end)

    it("is empty again once every node has left", function()
      local r = ring.new{vnodes = 16}
      r:add("a"):add("b")
      assert.is_true(r:remove("a"))
      assert.is_true(r:remove("b"))
      assert.are.equal(0, #r)
      assert.are.equal(0, r:points())
      assert.are.same({nil, "empty ring"}, {r:key_to_node("x")})
      r:add("c")
      assert.are.equal("c", r:key_to_node("x"))
    end)
  end)

  describe("add, remove, nodes", function()
    it("keeps nodes sorted and counts points", function()
      local r = ring.new{vnodes = 10}
      assert.are.equal(r, r:add("b"))
      r:add("c", 0.5):add("a", 2)
      assert.are.same({"a", "b", "c"}, r:nodes())
      assert.are.equal(3, #r)
      assert.are.equal(20 + 10 + 5, r:points())
      assert.are.equal(2, r:weight("a"))
      assert.are.equal(0.5, r:weight("c"))
      assert.is_nil(r:weight("zz"))
      assert.matches("3 nodes, 35 points", tostring(r))
    end)

    it("gives at least one point to a tiny weight", function()
      local r = ring.new{vnodes = 4}
      r:add("a", 1e-9)
      assert.are.equal(1, r:points())
      assert.are.equal("a", r:key_to_node("k"))
    end)

    it("updates the weight of a node added again", function()
      local r = ring.new{vnodes = 10}
      r:add("a"):add("b")
      r:add("a", 3)
      assert.are.same({"a", "b"}, r:nodes())
      assert.are.equal(40, r:points())
      assert.are.equal(3, r:weight("a"))
      r:add("a", 1)
      assert.are.equal(20, r:points())
    end)

    it("remove returns false for an absent node and changes nothing", function()
      local r = ring.new{vnodes = 10}
      r:add("a")
      local keys = some_keys(200)
      local before = owners(r, keys)
      assert.is_false(r:remove("b"))
      assert.are.same({"a"}, r:nodes())
      assert.are.same(before, owners(r, keys))
    end)

    it("rejects bad node names and weights", function()
      local r = ring.new()
      assert.has_error(function() r:add(1) end,
        "bad argument #1 to 'add' (node name must be a string, got number)")
      assert.has_error(function() r:add() end,
        "bad argument #1 to 'add' (node name must be a string, got no value)")
      assert.has_error(function() r:add("") end, "bad argument #1 to 'add' (node name must not be empty)")
      assert.has_error(function() r:remove({}) end,
        "bad argument #1 to 'remove' (node name must be a string, got table)")
      for _, w in ipairs{0, -1, 0 / 0, math.huge, -math.huge} do
        assert.has_error(function() r:add("a", w) end,
          "bad argument #2 to 'add' (weight must be a positive finite number)")
      end
      assert.has_error(function() r:add("a", "2") end,
        "bad argument #2 to 'add' (weight must be a number, got string)")
      assert.has_error(function() r:add("a", 1e12) end)
      assert.are.equal(0, #r) -- nothing was added by the failed calls
    end)

    it("rejects a self that is not a ring", function()
      local r = ring.new()
      assert.has_error(function() r.key_to_node({}, "x") end)
      assert.has_error(function() r.add(io.stdout, "x") end)
    end)
  end)

  describe("key_to_node", function()
    it("accepts any serializable key; equal tables are the same key", function()
      local r = ring.new{vnodes = 64}
      for _, n in ipairs(node_names(5)) do r:add(n) end
      for _, k in ipairs{"s", "", 0, -5, 2 ^ 62, 1.5, true, false, {}, {1, 2}, {a = {b = {}}}} do
        assert.is_string(r:key_to_node(k))
      end
      assert.are.equal(r:key_to_node({a = 1, b = 2, c = {3}}), r:key_to_node({c = {3}, b = 2, a = 1}))
    end)

    it("rejects nil and unserializable keys", function()
      local r = ring.new()
      r:add("a")
      assert.has_error(function() r:key_to_node(nil) end, "bad argument #1 to 'key_to_node' (key must not be nil)")
      assert.has_error(function() r:key_to_node() end, "bad argument #1 to 'key_to_node' (key must not be nil)")
      assert.has_error(function() r:key_to_node(print) end)
      assert.has_error(function() r:key_to_node({f = print}) end)
      assert.has_error(function() r:key_to_nodes(nil, 2) end,
        "bad argument #1 to 'key_to_nodes' (key must not be nil)")
      -- the key is checked even on an empty ring
      assert.has_error(function() ring.new():key_to_node(nil) end)
    end)

    it("is the first point clockwise of the key's hash (reference in Lua)", function()
      local r = ring.new{vnodes = 8}
      r:add("a"):add("b", 2):add("c", 0.5)
      local pts = {}
      for i = 1, r:points() do pts[i] = {r:point(i)} end
      assert.is_nil(r:point(0))
      assert.is_nil(r:point(r:points() + 1))
      for i = 2, #pts do
        assert.is_true(math.ult(pts[i - 1][1], pts[i][1]) or
          (pts[i - 1][1] == pts[i][1] and pts[i - 1][2] < pts[i][2]))
      end
      local function reference(key)
        local h = core.hash(key)
        for _, p in ipairs(pts) do
          if not math.ult(p[1], h) then return p[2] end
        end
        return pts[1][2] -- wraps round
      end
      local wrapped = 0
      for _, k in ipairs(some_keys(2000)) do
        assert.are.equal(reference(k), r:key_to_node(k))
        if math.ult(pts[#pts][1], core.hash(k)) then wrapped = wrapped + 1 end
      end
      assert.is_true(wrapped > 0) -- the wrap-around was exercised
    end)

    it("does not allocate on the Lua heap for string and integer keys", function()
      local r = ring.new()
      for _, n in ipairs(node_names(10)) do r:add(n) end
      local strs, ints = {}, {}
      for i = 1, 10000 do strs[i] = "key:" .. i; ints[i] = i * 104729 end
      r:key_to_node(strs[1]) -- warm up
      collectgarbage()
      collectgarbage("stop")
      local before = collectgarbage("count")
      for i = 1, 10000 do r:key_to_node(strs[i]) end
      for i = 1, 10000 do r:key_to_node(ints[i]) end
      local after = collectgarbage("count")
      collectgarbage("restart")
      assert.are.equal(before, after)
    end)
  end)

  describe("determinism", function()
    it("does not depend on insertion order", function()
      local names = node_names(20)
      local weights = {}
      for i, n in ipairs(names) do weights[n] = (i % 3 == 0) and 2 or ((i % 5 == 0) and 0.5 or 1) end
      local keys = some_keys(3000)
      local ref, ref2
      for seed = 1, 8 do
        local r = ring.new{vnodes = 128}
        for _, n in ipairs(shuffled(names, seed)) do r:add(n, weights[n]) end
        local o, o2 = owners(r, keys), {}
        for i = 1, 200 do o2[i] = r:key_to_nodes(keys[i], 3) end
        if ref then
          assert.are.same(ref, o)
          assert.are.same(ref2, o2)
        else
          ref, ref2 = o, o2
        end
      end
    end)

    it("does not depend on the history of adds, removes and weight changes", function()
      local names = node_names(12)
      local keys = some_keys(2000)
      local direct = ring.new{vnodes = 100}
      for i = 1, 8 do direct:add(names[i], i == 3 and 2 or 1) end
      local churned = ring.new{vnodes = 100}
      for _, n in ipairs(shuffled(names, 42)) do churned:add(n, 0.7) end
      for i = 12, 9, -1 do churned:remove(names[i]) end
      for i = 1, 8 do churned:add(names[i]) end
      churned:add(names[3], 2)
      assert.are.same(direct:nodes(), churned:nodes())
      assert.are.same(owners(direct, keys), owners(churned, keys))
    end)

    it("places nodes added in a row as if each were placed before the next came", function()
      -- (an add leaves its points to the next call that needs them, which
      -- places all the nodes added since in one merge)
      local names = node_names(30)
      local one, batch = ring.new{vnodes = 64}, ring.new{vnodes = 64}
      local points = 0
      for i, n in ipairs(shuffled(names, 7)) do
        local w = (i % 4 == 0) and 2 or 1
        points = points + 64 * w
        one:add(n, w)
        assert.are.equal(points, one:points()) -- (a read: `one` is settled after each add)
        batch:add(n, w)
      end
      -- in `batch`, a weight change and a remove among pending adds
      batch:add(names[5], 3)
      one:add(names[5], 3)
      batch:add("zz-late")
      batch:remove("zz-late")
      assert.are.same(one:nodes(), batch:nodes())
      assert.are.equal(one:points(), batch:points())
      for i = 1, one:points() do
        local h1, n1 = one:point(i)
        local h2, n2 = batch:point(i)
        assert.are.equal(h1, h2)
        assert.are.equal(n1, n2)
      end
      assert.are.same(owners(one, some_keys(2000)), owners(batch, some_keys(2000)))
    end)

    it("answers every read after adds with the nodes added (size, nodes, weight at once)", function()
      local r = ring.new{vnodes = 16}
      r:add("b"):add("a", 2):add("c")
      assert.are.equal(3, r:size())
      assert.are.same({ "a", "b", "c" }, r:nodes())
      assert.are.equal(2, r:weight("a"))
      assert.are.equal(64, r:points())
      local seen = {}
      for k = 1, 300 do seen[r:key_to_node(k)] = true end
      assert.are.same({ a = true, b = true, c = true }, seen)
      assert.matches("3 nodes, 64 points", tostring(r))
    end)

    it("answers lookups after removes as a ring built without the removed nodes", function()
      -- (a remove leaves the node's points, skipped, to the next call that
      -- needs them gone; lookups do not)
      local names = node_names(12)
      local keys = some_keys(3000)
      local r = ring.new{vnodes = 64}
      for _, n in ipairs(names) do r:add(n) end
      assert.is_true(r:remove(names[4]))
      assert.is_true(r:remove(names[9]))
      assert.is_false(r:remove(names[9]))
      assert.are.equal(10, r:size())
      assert.is_nil(r:weight(names[4]))
      local fresh = ring.new{vnodes = 64}
      for i, n in ipairs(names) do
        if i ~= 4 and i ~= 9 then fresh:add(n) end
      end
      local got, want = {}, {}
      for i, k in ipairs(keys) do
        got[i], want[i] = r:key_to_node(k), fresh:key_to_node(k)
      end
      assert.are.same(want, got)
      for i = 1, 300 do assert.are.same(fresh:key_to_nodes(keys[i], 12), r:key_to_nodes(keys[i], 12)) end
      -- a remove and an add before any lookup, then one that comes back
      r:remove(names[1])
      r:add("zz-new", 2)
      r:add("zz-other")
      r:remove(names[2]) -- (with a node added and not yet placed)
      fresh:remove(names[1])
      fresh:add("zz-new", 2)
      fresh:add("zz-other")
      fresh:remove(names[2])
      assert.are.same(owners(fresh, keys), owners(r, keys))
      r:add(names[4])
      fresh:add(names[4])
      assert.are.same(fresh:nodes(), r:nodes())
      assert.are.equal(fresh:points(), r:points())
      assert.are.same(owners(fresh, keys), owners(r, keys))
      -- every node removed: an empty ring, before and after it is tidied
      for _, n in ipairs(r:nodes()) do r:remove(n) end
      assert.are.equal(0, r:size())
      local none, err = r:key_to_node("k")
      assert.is_nil(none)
      assert.are.equal("empty ring", err)
      assert.is_nil((r:key_to_nodes("k", 2)))
      assert.are.equal(0, r:points())
      assert.are.same({}, r:nodes())
    end)

    it("gives known owners (catches any change of hashing)", function()
      -- Fixed answers: every machine, endianness and version must agree, or
      -- nodes of a mixed cluster would place children differently.
      local r = ring.new()
      r:add("alpha@10.0.0.1:4370"):add("beta@10.0.0.2:4370"):add("gamma@10.0.0.3:4370", 2)
      local keys = {"child:1", "child:2", "child:3", "child:4", "child:5", "child:6", "child:7",
        "child:8", "", 42, -7, 0, 2 ^ 40, 1 << 40, 2.5, true, {"worker", 42},
        {id = 7, kind = "job"}, {"worker", {1, 2}}}
      local known = {"gamma", "beta", "beta", "gamma", "gamma", "alpha", "beta", "alpha", "beta",
        "gamma", "gamma", "gamma", "beta", "beta", "gamma", "gamma", "gamma", "gamma", "beta"}
      for i, k in ipairs(keys) do
        assert.are.equal(known[i] .. "@10.0.0." .. ({alpha = 1, beta = 2, gamma = 3})[known[i]] .. ":4370",
          r:key_to_node(k), "key #" .. i)
      end
      assert.are.same({"alpha@10.0.0.1:4370", "gamma@10.0.0.3:4370", "beta@10.0.0.2:4370"},
        r:key_to_nodes("child:6", 3))
      assert.are.same({"gamma@10.0.0.3:4370", "beta@10.0.0.2:4370"}, r:key_to_nodes({"worker", 42}, 2))
      -- the points themselves: XXH3_64bits_withSeed(name .. be32(i), 0)
      local small = ring.new{vnodes = 2}
      small:add("b"):add("a")
      local pts = {}
      for i = 1, small:points() do
        local h, n = small:point(i)
        pts[i] = string.format("%016x %s", h, n)
      end
      assert.are.same({"101668d8b19eb50c a", "4dd077b7d2140f2b a", "851cfef87cdc97ec b",
        "f6fb2875f2548a43 b"}, pts)
    end)
  end)

  describe("minimal movement", function()
    local names, keys = node_names(10), some_keys(20000)

    it("an add/remove round trip gives the same owners", function()
      local r = ring.new()
      for _, n in ipairs(names) do r:add(n) end
      local before = owners(r, keys)
      r:add("newcomer@10.0.0.99:4370")
      r:remove("newcomer@10.0.0.99:4370")
      assert.are.same(before, owners(r, keys))
      r:remove(names[4])
      r:add(names[4])
      assert.are.same(before, owners(r, keys))
    end)

    it("moves keys only to a node that joins, about 1/(n+1) of them", function()
      local r = ring.new()
      for _, n in ipairs(names) do r:add(n) end
      local before = owners(r, keys)
      r:add("newcomer@10.0.0.99:4370")
      local after, moved = owners(r, keys), 0
      for i = 1, #keys do
        if after[i] ~= before[i] then
          moved = moved + 1
          assert.are.equal("newcomer@10.0.0.99:4370", after[i])
        end
      end
      local ratio = moved / #keys * 11
      assert.is_true(ratio > 0.85 and ratio < 1.15, "moved ratio " .. ratio)
    end)

    it("moves only the keys of a node that leaves", function()
      local r = ring.new()
      for _, n in ipairs(names) do r:add(n) end
      local before = owners(r, keys)
      r:remove(names[7])
      local after = owners(r, keys)
      for i = 1, #keys do
        if before[i] ~= names[7] then assert.are.equal(before[i], after[i]) end
        assert.are_not.equal(names[7], after[i])
      end
    end)

    it("moves only the difference when a weight grows", function()
      local r = ring.new()
      for _, n in ipairs(names) do r:add(n) end
      local before = owners(r, keys)
      r:add(names[2], 1.5)
      local after = owners(r, keys)
      for i = 1, #keys do
        if after[i] ~= before[i] then assert.are.equal(names[2], after[i]) end
      end
    end)
  end)

  describe("balance and weights", function()
    it("spreads keys evenly with the default vnodes", function()
      local r = ring.new()
      for _, n in ipairs(node_names(10)) do r:add(n) end
      local keys = {}
      for i = 1, 50000 do keys[i] = "key:" .. i end
      local c, max = count_by_node(r, keys), 0
      for _, v in pairs(c) do max = math.max(max, v) end
      assert.is_true(max / 5000 <= 1.10, "max/mean " .. max / 5000)
    end)

    it("gives a weight-2 node about twice the keys", function()
      local r = ring.new()
      local names = node_names(6)
      for i = 1, 5 do r:add(names[i]) end
      r:add(names[6], 2)
      local keys = {}
      for i = 1, 70000 do keys[i] = "key:" .. i end
      local c = count_by_node(r, keys)
      local others = 0
      for i = 1, 5 do others = others + c[names[i]] end
      local ratio = c[names[6]] / (others / 5)
      assert.is_true(ratio > 1.85 and ratio < 2.15, "weight-2 ratio " .. ratio)
      -- and a weight-0.5 node about half
      r:add(names[6], 0.5)
      c = count_by_node(r, keys)
      others = 0
      for i = 1, 5 do others = others + c[names[i]] end
      ratio = c[names[6]] / (others / 5)
      assert.is_true(ratio > 0.42 and ratio < 0.58, "weight-0.5 ratio " .. ratio)
    end)
  end)

  describe("key_to_nodes", function()
    local r = ring.new{vnodes = 256}
    local names = node_names(7)
    for _, n in ipairs(names) do r:add(n) end

    it("returns n distinct nodes, the owner first, in a stable order", function()
      for _, k in ipairs(some_keys(500)) do
        local list = r:key_to_nodes(k, 3)
        assert.are.equal(3, #list)
        assert.are.equal(r:key_to_node(k), list[1])
        assert.are_not.equal(list[1], list[2])
        assert.are_not.equal(list[2], list[3])
        assert.are_not.equal(list[1], list[3])
        assert.are.same(list, r:key_to_nodes(k, 3))
        local five = r:key_to_nodes(k, 5)
        assert.are.same(list, {five[1], five[2], five[3]}) -- a prefix of a longer list
      end
    end)

    it("returns every node, once, when n exceeds the ring", function()
      local list = r:key_to_nodes("k", 100)
      assert.are.equal(7, #list)
      table.sort(list)
      assert.are.same(names, list) -- node_names sorts as it numbers 1..7
      assert.are.same({"solo"}, ring.new():add("solo"):key_to_nodes("k", 3))
    end)

    it("fails over to the next node when the owner leaves", function()
      local copy = ring.new{vnodes = 256}
      for _, n in ipairs(names) do copy:add(n) end
      for _, k in ipairs(some_keys(300)) do
        local list = copy:key_to_nodes(k, 2)
        copy:remove(list[1])
        assert.are.equal(list[2], copy:key_to_node(k))
        copy:add(list[1])
      end
    end)

    it("rejects n < 1 and a missing n", function()
      assert.has_error(function() r:key_to_nodes("k", 0) end,
        "bad argument #2 to 'key_to_nodes' (n must be at least 1)")
      assert.has_error(function() r:key_to_nodes("k", -3) end,
        "bad argument #2 to 'key_to_nodes' (n must be at least 1)")
      assert.has_error(function() r:key_to_nodes("k") end)
      assert.has_error(function() r:key_to_nodes("k", 1.5) end)
    end)
  end)

  describe("memory", function()
    it("reports the C bytes held, growing and shrinking with the ring", function()
      local r = ring.new()
      local empty = r:memory()
      r:add("a")
      local one = r:memory()
      assert.is_true(one >= empty + 2048 * 12)
      r:add("b")
      assert.is_true(r:memory() > one)
      r:remove("b")
      assert.are.equal(one, r:memory())
      r:remove("a")
      assert.are.equal(empty, r:memory())
    end)

    it("keeps a little slack as nodes leave one by one, and gives it back", function()
      local r = ring.new{vnodes = 64}
      local names = node_names(10)
      r:add(names[1])
      local one = r:memory()
      for i = 2, 10 do r:add(names[i]) end
      local ten = r:memory()
      r:remove(names[10])
      assert.is_true(r:memory() <= ten)
      for i = 9, 2, -1 do
        r:remove(names[i])
        assert.is_true(r:memory() <= ten)
      end
      assert.are.equal(one, r:memory())
      local fresh = ring.new{vnodes = 64}
      fresh:add(names[1])
      for k = 1, 200 do assert.are.equal(fresh:key_to_node(k), r:key_to_node(k)) end
    end)

    it("grows with room to spare, so most adds of a big ring need no realloc", function()
      local r = ring.new{vnodes = 64}
      local names = node_names(40)
      local grew, last = 0, r:memory()
      for i = 1, 40 do
        r:add(names[i])
        -- (a node's own entry is a few dozen bytes; its 64 points, 768)
        if r:memory() - last > 256 then grew = grew + 1 end
        last = r:memory()
      end
      -- an eighth more room each time: from 10 nodes on, an add of 1/10 or
      -- less of the points fits in the room of the one before it, or nearly
      assert.is_true(grew <= 25, "the arrays were reallocated at " .. grew .. " adds of 40")
      assert.is_true(r:memory() <= (40 * 64 * 12 + (40 * 64 // 2 + 1) * 4) * 1.25 + 4096,
        "too much room: " .. r:memory() .. " bytes")
      local fresh = ring.new{vnodes = 64}
      for i = 40, 1, -1 do fresh:add(names[i]) end
      for k = 1, 500 do assert.are.equal(fresh:key_to_node(k), r:key_to_node(k)) end
    end)

    it("counts the rings' C memory towards a collection: dropped rings do not pile up", function()
      -- the collector does not see the arrays (0.3 MiB a 10-node ring):
      -- 1,000 rings made and dropped held 300 MiB until a collection came
      -- for the Lua heap's own sake
      collectgarbage()
      local before, peak = core.memory().total, 0
      local names = node_names(10)
      for _ = 1, 1000 do
        local r = ring.new()
        for _, n in ipairs(names) do r:add(n) end
        r:key_to_node("x")
        peak = math.max(peak, core.memory().total - before)
      end
      assert.is_true(peak < 64 * 1024 * 1024, "the rings held up to " .. peak // 1048576 .. " MiB")
    end)

    it("frees rings that are collected", function()
      for _ = 1, 50 do
        local r = ring.new{vnodes = 64}
        for _, n in ipairs(node_names(10)) do r:add(n) end
      end
      collectgarbage()
      collectgarbage()
    end)
  end)
end)

describe("pogo.ring keys with pids and refs", function()
  it("hashes them like any other serializable value", function()
    local pogo = require "pogo"
    local r = ring.new()
    for i = 1, 5 do r:add("n" .. i) end
    local pid, ref = pogo.self(), pogo.make_ref()
    local a = r:key_to_node({ pid, 1 })
    assert.is_string(a)
    assert.equal(a, r:key_to_node({ pid, 1 }))
    assert.is_string(r:key_to_node(ref))
    assert.equal(3, #r:key_to_nodes({ "job", pid }, 3))
    assert.has_error(function() r:key_to_node({ function() end }) end)
  end)
end)
