-- Starting a node, its name and cookie, and bin/pogo itself.
local pogo = require "pogo"
local uv = require "luv"
local cluster = require "support.cluster"

local R = "support.remote"

local run_pogo = require("support.pogo_cli").run

describe("a node", function()
  local c

  setup(function()
    c = cluster.new { timeout_ms = 1000, heartbeat_ms = 200 }
  end)

  teardown(function()
    c:teardown()
    pogo.stop()
  end)

  it("is named name@host:port with the real port when started on port 0", function()
    assert.are.equal("nonode@nohost", pogo.node())
    local name = c:start_self { log = false }
    assert.are.equal(name, pogo.node())
    local port = tonumber(name:match("^spec@127%.0%.0%.1:(%d+)$"))
    assert.is_true(port ~= nil and port > 0, name)
    assert.are.equal(pogo.node(), pogo.node_of(pogo.self()))
    assert.matches("^<spec@127%.0%.0%.1:%d+%.%d+>$", tostring(pogo.self()))
    local ok, err = pcall(pogo.start, { name = "again", cookie = "x" })
    assert.is_false(ok)
    assert.matches("already started", err)
  end)

  it("checks its options and addresses", function()
    local ok, err = pcall(pogo.connect, "no port here")
    assert.is_false(ok)
    assert.matches("invalid address", err)
    -- nothing listens on port 1
    local name, why = pogo.connect("127.0.0.1:1")
    assert.is_nil(name)
    assert.matches("refused", why)
    assert.is_false(pogo.disconnect("ghost@127.0.0.1:1"))
    -- a node that is no string is a mistake, not an unknown node
    for _, bad in ipairs { 42, true, {} } do
      local okd, errd = pcall(pogo.disconnect, bad)
      assert.is_false(okd)
      assert.matches("pogo.disconnect: node must be a node name (a string), got " .. type(bad), errd, 1, true)
      okd, errd = pcall(pogo.block, bad, true)
      assert.is_false(okd)
      assert.matches("pogo.block: node must be a node name (a string), got " .. type(bad), errd, 1, true)
    end
    assert.are.same({ c.self_name }, { pogo.node() })
    assert.is_true(pogo.rpc(pogo.node(), "string", "len", { "abc" }))
  end)

  it("takes its cookie from POGO_COOKIE, else from ~/.pogo.cookie (created 0600)", function()
    local n = c:start_node { name = "envcookie", cookie = false, env = { POGO_COOKIE = c.cookie } }
    c:connect(n)
    assert.is_true((c:rpc(n, R, "nodes")))
    c:kill(n)
    local home = os.tmpname()
    os.remove(home)
    assert(uv.fs_mkdir(home, tonumber("700", 8)))
    local env = { HOME = home, POGO_COOKIE = "" }
    local f1 = c:start_node { name = "file1", cookie = false, env = env }
    local st = uv.fs_stat(home .. "/.pogo.cookie")
    assert.is_not_nil(st, "the cookie file was not created")
    assert.are.equal(tonumber("600", 8), st.mode & tonumber("777", 8))
    local fh = io.open(home .. "/.pogo.cookie")
    local cookie = fh:read("a"):gsub("%s+$", "")
    fh:close()
    assert.matches("^%u+$", cookie)
    assert.are.equal(20, #cookie)
    -- a second node with the same home shares it: they mesh
    local f2 = c:start_node { name = "file2", cookie = false, env = env, seeds = { f1 } }
    local name, err = pogo.connect(f2.addr) -- and we, with another cookie, cannot
    assert.is_nil(name)
    assert.matches("authentication", err)
    cluster.wait_until(function() return f1.err:find("connected to " .. f2.name, 1, true) end, 3000,
                       "file1 and file2 to connect")
    c:kill(f1)
    c:kill(f2)
    os.remove(home .. "/.pogo.cookie")
    uv.fs_rmdir(home)
  end)

  it("bin/pogo runs a script with its arguments as the first process", function()
    local n = c:start_node { name = "scripted", script = "spec/support/script_node.lua", args = { "one", "2" } }
    c:connect(n)
    local args = pogo.call({ "script_args", n.name }, "args", 2000)
    assert.are.same({ "one", "2", n = 2 }, args)
    -- a script that returns leaves the node serving, and the tree it
    -- started with start_link runs on (its process stays)
    local t = c:start_node { name = "treed", script = "spec/support/script_node.lua", args = { "tree" } }
    c:connect(t)
    cluster.wait_until(function()
      local ok, pid = c:rpc(t, "pogo", "whereis", { "tree_worker" })
      return ok and pid ~= nil
    end, 5000, "the script's tree")
    local _, worker = c:rpc(t, "pogo", "whereis", { "tree_worker" })
    local ref = pogo.monitor(worker)
    -- (its tree stopped as the script's process ended, right after it returned)
    assert.is_nil(pogo.receive(function(m) return m[1] == "DOWN" and m[2] == ref end, 500), "the tree stopped")
    -- another tree that crashes takes neither the script's process nor the first tree with it
    local _, sup2 = c:rpc(t, "pogo", "whereis", { "tree_sup2" })
    local ref2 = pogo.monitor(sup2)
    assert.is_true((c:rpc(t, "pogo", "exit", { sup2, "kill" })))
    cluster.expect(function(m) return m[1] == "DOWN" and m[2] == ref2 end, 5000, "the second tree's end")
    assert.is_nil(pogo.receive(function(m) return m[1] == "DOWN" and m[2] == ref end, 500), "the first tree stopped")
    assert.are.same({ code = 0, signal = 0 }, c:stop(t))
    -- a script that fails is reported, and the node stops in order and exits 1
    local f = c:start_node { name = "failing", script = "spec/support/script_node.lua", args = { "fail" } }
    assert.are.same({ code = 1, signal = 0 }, c:wait_exit(f, 10000))
    assert.matches("failed on purpose", f.err, 1, true)
    assert.matches("the script failed (exit status 1): stopping", f.err, 1, true)
    -- SIGTERM: a clean stop, exit code 0
    assert.are.same({ code = 0, signal = 0 }, c:stop(n))
  end)

  it("bin/pogo explains its options", function()
    local code, out = run_pogo { "--help" }
    assert.are.equal(0, code)
    assert.matches("usage: pogo", out)
    local code2, _, err = run_pogo { "--bogus" }
    assert.are.equal(2, code2)
    assert.matches("unknown option", err)
    local code3, _, err3 = run_pogo { "--cookie", "x", "no/such/script.lua" }
    assert.are.equal(2, code3)
    assert.matches("no/such/script.lua", err3)
  end)
end)
