--- The scenario every embedding example passes (spec/embed/*_spec.lua): a
-- bin/pogo node A runs the distributed supervisor "dsup" (scope "test", as
-- spec/support/dsup_node.lua) with 16 echo children, all on A; the host
-- starts (its nodes run the same supervisor, from the same script, and join
-- through A); the children whose ring owner is now an embedded node move
-- onto it and answer calls from there; the host stops (SIGTERM) and they
-- come back to A. `check(c, host, names)` adds what is particular to a host.
-- Called from a spec file with its environment (busted's describe, it, ...):
--   require "support.embed_moves" (_ENV, kind, check, {nodes = n})
local pogo = require "pogo"
local cluster = require "support.cluster"
local hosts = require "support.embed_hosts"

local R = "support.dsup_remote"
local CHILDREN = 16

local valgrind = os.getenv("POGO_VALGRIND") == "1"

return function(env, kind, check, opts)
  local describe, it, setup, teardown, assert = env.describe, env.it, env.setup, env.teardown, env.assert
  opts = opts or {}
  describe("the " .. kind .. " example", function()
    local c, a, host

    setup(function()
      -- under valgrind the spec's node (and the C host) are slow: longer timeouts
      c = cluster.new { timeout_ms = valgrind and 10000 or 2000, heartbeat_ms = valgrind and 1000 or 200 }
      c:start_self()
      a = c:start_node { name = "a", script = "spec/support/dsup_node.lua", args = { "dsup", "0" } }
      c:connect(a)
    end)

    teardown(function()
      hosts.kill(host)
      c:teardown()
    end)

    -- Wait until every child runs once, on the node A's ring says; returns child -> node.
    local function await_placement(nodes, what)
      local where, last
      local ok, err = pcall(cluster.wait_until, function()
        where = {}
        for _, node in ipairs(nodes) do
          local okr, ns = c:rpc(node, R, "children", { "local", "echo" }, 2000)
          if not okr then last = "rpc to " .. node .. ": " .. tostring(ns); return false end
          for _, n in ipairs(ns) do
            if where[n] then last = "child " .. n .. " twice"; return false end
            where[n] = node
          end
        end
        for n = 1, CHILDREN do
          local owner = c:call(a, R, "node_for_id", { { "echo", n } })
          if where[n] ~= owner then
            last = "child " .. n .. " on " .. tostring(where[n]) .. ", owner " .. tostring(owner)
            return false
          end
        end
        return true
      end, 30000, what)
      if not ok then error(tostring(err) .. " (last: " .. tostring(last) .. ")", 2) end
      return where
    end

    it("runs nodes that join the cluster; distributed children move onto them and back", function()
      for n = 1, CHILDREN do assert(c:call(a, R, "start_echo", { n })) end
      await_placement({ a.name }, "every child on A")

      host = hosts.start(kind, { cookie = c.cookie, seeds = { a.addr }, script = "spec/support/dsup_node.lua",
        args = { "dsup", "0" }, timeout_ms = c.timeout_ms, heartbeat_ms = c.heartbeat_ms })
      local names = hosts.wait_names(host, opts.nodes or 1)
      local all = { a.name }
      for _, name in ipairs(names) do all[#all + 1] = name end
      -- the embedded nodes join the mesh (this node sees them) and A's ring
      cluster.wait_until(function()
        local seen = {}
        for _, n in ipairs(pogo.nodes()) do seen[n] = true end
        for _, name in ipairs(names) do if not seen[name] then return false end end
        local ok, ring = c:rpc(a, R, "nodes", {}, 2000)
        return ok and #ring == #all
      end, 30000, "the embedded nodes in A's ring")

      local where = await_placement(all, "the children on their owners")
      local moved = {}
      for n, node in pairs(where) do
        if node ~= a.name then moved[#moved + 1] = n end
      end
      assert.is_true(#moved > 0, "no child moved onto the embedded node(s)")
      -- children on an embedded node answer calls made from A (through the supervisor)
      for _, n in ipairs(moved) do
        assert.same({ "ping", n }, c:call(a, R, "call_echo", { n, { "ping", n } }))
      end

      if check then check(c, host, names) end

      pogo.monitor_nodes(true)
      local exit = hosts.stop(host, 20000)
      assert.is_truthy(exit, kind .. " did not exit on SIGTERM")
      -- an orderly stop: every embedded node said goodbye (not a link that broke)
      for _, name in ipairs(names) do
        local down = cluster.expect(function(m)
          return type(m) == "table" and m[1] == "nodedown" and m[2] == name
        end, 5000, "the nodedown of " .. name)
        assert.are.equal("shutdown", down[3], name .. " did not stop in order: " .. host.err:sub(-2000))
      end
      pogo.monitor_nodes(false)
      assert.same({ code = 0, signal = 0 }, exit, kind .. " did not exit cleanly: " .. host.err
        .. "\n" .. host.out:sub(-3000))
      assert.is_nil(host.err:find("Sanitizer", 1, true), host.err)
      assert.is_nil(host.err:find("runtime error:", 1, true), host.err)
      cluster.wait_until(function()
        local ok, ring = c:rpc(a, R, "nodes", {}, 2000)
        return ok and #ring == 1
      end, 30000, "A's ring without the embedded nodes")
      await_placement({ a.name }, "every child back on A")
    end)
  end)
end
