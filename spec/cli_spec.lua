-- Specs for bin/pogo's command line (real bin/pogo processes) and for the
-- cookie files that bin/pogo --cookie-file and pogo.start's ~/.pogo.cookie read.
local pogo = require "pogo"
local uv = require "luv"
local cli = require "support.pogo_cli"
local cluster = require "support.cluster"

local run = cli.run

local function octal(s) return tonumber(s, 8) end

-- A fresh private directory (mode 0700) for files; removed by rm_tree.
local function tmpdir()
  local d = os.tmpname()
  os.remove(d)
  assert(uv.fs_mkdir(d, octal("700")))
  return d
end

local function rm_tree(path)
  local st = uv.fs_lstat(path)
  if not st then return end
  if st.type == "directory" then
    uv.fs_chmod(path, octal("700"))
    local it = uv.fs_scandir(path)
    while it do
      local name = uv.fs_scandir_next(it)
      if not name then break end
      rm_tree(path .. "/" .. name)
    end
    assert(uv.fs_rmdir(path))
  else
    assert(uv.fs_unlink(path))
  end
end

local function write(path, content, mode)
  local f = assert(io.open(path, "w"))
  f:write(content)
  f:close()
  assert(uv.fs_chmod(path, octal(mode)))
end

-- A usage error: exit 2 and one line "pogo: ...", no Lua position or traceback.
local function assert_one_line(code, err, want_code)
  assert.are.equal(want_code, code, err)
  assert.matches("^pogo: [^\n]+\n$", err)
  assert.is_nil(err:find("%.lua:%d+:"), err)
  assert.is_nil(err:find("traceback", 1, true), err)
end

-- These run first: they check that a failed pogo.start leaves the node unstarted.
describe("pogo.start", function()
  local dir

  before_each(function() dir = tmpdir() end)
  after_each(function() rm_tree(dir) end)

  it("a bad option raises at the caller, naming it", function()
    local cases = {
      { { port = "4370" }, 'pogo.start: opts.port must be an integer from 0 to 65535, got "4370"' },
      { { port = 70000 }, "pogo.start: opts.port must be an integer from 0 to 65535, got 70000" },
      { { name = 42 }, "pogo.start: opts.name must be a string, got 42" },
      { { heartbeat_ms = 1.5 }, "pogo.start: opts.heartbeat_ms must be an integer, got 1.5" },
      { { cookie = "" }, 'pogo.start: opts.cookie must be a non-empty string, got ""' },
      { { seeds = { 1 } }, "pogo.start: opts.seeds must be a list of \"host:port\" or node names, got table" },
      { { log = "no" }, 'pogo.start: opts.log must be a boolean, got "no"' },
      { { heartbeat = 500 }, "pogo.start: unknown option: heartbeat" },
      { { heartbeat_ms = 3000, timeout_ms = 1000 },
        "pogo.start: opts.heartbeat_ms (3000) must be less than opts.timeout_ms (1000)" },
      { { timeout_ms = 800 }, "pogo.start: opts.heartbeat_ms (1000) must be less than opts.timeout_ms (800)" },
    }
    for _, case in ipairs(cases) do
      local ok, err = pcall(function() pogo.start(case[1]) end)
      assert.is_false(ok)
      assert.matches("^spec/cli_spec%.lua:%d+: ", err)
      assert.matches(case[2], err, 1, true)
    end
    assert.are.equal("nonode@nohost", pogo.node())
  end)

  it("~/.pogo.cookie open to others is refused by pogo.start, without a Lua position", function()
    write(dir .. "/.pogo.cookie", "secret\n", "644")
    -- in bin/pogo: one line, exit 1 (the node cannot start)
    local code, _, err = run({ "--name", "homecookie" }, { env = { HOME = dir, POGO_COOKIE = "" } })
    assert_one_line(code, err, 1)
    assert.matches("chmod 600 " .. dir .. "/.pogo.cookie\n", err, 1, true)
    -- in this process: pogo.start raises the reason as it is
    local home, env_cookie = os.getenv("HOME"), os.getenv("POGO_COOKIE")
    uv.os_setenv("HOME", dir)
    uv.os_unsetenv("POGO_COOKIE")
    local ok, why = pcall(pogo.start, { name = "homecookie" })
    if home then uv.os_setenv("HOME", home) else uv.os_unsetenv("HOME") end
    if env_cookie then uv.os_setenv("POGO_COOKIE", env_cookie) end
    assert.is_false(ok)
    assert.are.equal("pogo.start: the cookie file " .. dir .. "/.pogo.cookie can be accessed by group or others "
                     .. "(mode 0644); make it private to its owner: chmod 600 " .. dir .. "/.pogo.cookie", why)
    assert.are.equal("nonode@nohost", pogo.node())
  end)
end)

describe("bin/pogo", function()
  it("--help lists every option with its default and exits 0", function()
    local code, out, err = run { "--help" }
    assert.are.equal(0, code, err)
    assert.matches("^usage: pogo %[options%] %[script%.lua %[args%.%.%.%]%]\n", out)
    local defaults = {
      ["--name NAME"] = "random", ["--host HOST"] = "127.0.0.1", ["--port PORT"] = "0",
      ["--seeds A[,B...]"] = "none", ["--cookie COOKIE"] = "$POGO_COOKIE, else ~/.pogo.cookie",
      ["--cookie-file FILE"] = "none", ["--heartbeat-ms N"] = "1000", ["--timeout-ms N"] = "5000",
      ["--max-frame N"] = "16777216, 16 MiB", ["--log-level LEVEL"] = "$POGO_LOG_LEVEL, else info",
      ["--max-memory BYTES"] = "none", ["--preempt-ms MS"] = "0.5", ["--stop-timeout-ms N"] = "15000",
      ["--tls-cert FILE"] = "none: plain links", ["--tls-key FILE"] = "none", ["--tls-ca FILE"] = "none",
    }
    -- each option's entry on one line: continuation lines are indented deeper
    local text = out:gsub("\n     +", " ")
    for opt, default in pairs(defaults) do
      local entry = text:match("\n%s*" .. opt:gsub("%p", "%%%0") .. " ([^\n]*)")
      assert.is_not_nil(entry, opt .. " is not listed:\n" .. out)
      assert.matches("(default: " .. default .. ")", entry, 1, true)
    end
    for _, flag in ipairs { "-h, --help", "--print-node", "--watch-stdin", "--quiet", "--version" } do
      assert.matches("\n%s*" .. flag:gsub("%p", "%%%0") .. " ", text)
    end
  end)

  it("--version prints pogo._VERSION and exits 0", function()
    local code, out = run { "--version" }
    assert.are.equal(0, code)
    assert.are.equal("pogo " .. pogo._VERSION .. "\n", out)
  end)

  it("a usage error is one line, without Lua positions, and exit status 2", function()
    local cases = {
      { { "--bogus" }, "unknown option '--bogus'" },
      { { "--prot", "1" }, "did you mean '--port'" },
      { { "--cookie" }, "option '--cookie' requires an argument" },
      { { "--port", "abc" }, "--port: an integer from 0 to 65535 expected, got 'abc'" },
      { { "--heartbeat-ms", "1.5" }, "--heartbeat-ms: an integer 10 or more expected, got '1.5'" },
      { { "--port", "70000" }, "from 0 to 65535" },
      { { "--log-level", "loud" }, "must be one of 'debug', 'info', 'notice', 'warning', 'error'" },
      { { "--cookie", "a", "--cookie-file", "b" }, "can not be used together" },
      { { "--cookie", "x", "no/such/script.lua" }, "no/such/script.lua" },
      { { "--tls-cert", "a.pem" }, "--tls-cert, --tls-key and --tls-ca go together" },
      { { "--discover", "nodes.test:4370" }, "--discover: dns:NAME:PORT or dns:_service._tcp.NAME expected" },
      { { "--dns-server", "127.0.0.1:53" }, "--dns-server and --discover-interval-ms need --discover" },
      { { "--discover", "dns:x.test:1", "--discover-interval-ms", "5" }, "an integer 10 or more expected" },
      { { "--stop-timeout-ms", "soon" }, "--stop-timeout-ms: an integer 0 or more expected, got 'soon'" },
      -- values pogo.start refuses as it starts: named by their option
      { { "--cookie", "x", "--seeds", "garbage" }, "--seeds: invalid seed 'garbage'" },
      { { "--cookie", "x", "--http", "garbage" }, "--http: \"host:port\" expected, got 'garbage'" },
      { { "--cookie", "x", "--http", "foo:80" }, "--http: cannot listen on foo: not an IP address" },
      { { "--cookie", "x", "--advertise", "::bad::" }, "--advertise: must be \"host:port\" or \"host\"" },
      { { "--cookie", "x", "--advertise", "1.2.3.4:99999" }, "--advertise: must be" },
      { { "--cookie", "x", "--name", "bad@name" }, "--name: invalid node name 'bad@name'" },
      { { "--cookie", "x", "--discover", "dns:foo" }, "--discover: must be \"name:port\"" },
      { { "--cookie", "x", "--host", "::1x" }, "--host: cannot listen on ::1x: not an IP address" },
    }
    for _, case in ipairs(cases) do
      local code, _, err = run(case[1])
      assert_one_line(code, err, 2)
      assert.matches(case[2], err, 1, true)
      if case[2] ~= "no/such/script.lua" then assert.are.equal("; see pogo --help\n", err:sub(-18)) end
    end
  end)

  it("a script that raises is logged as one line, and the node stops in order and exits 1", function()
    local dir = tmpdir()
    local marker = dir .. "/terminated"
    local script = dir .. "/fails.lua"
    write(script, string.format([[
local pogo = require "pogo"
local server = require "pogo.server"
local M = { init = function() return {} end, handle_info = function(_, st) return st end,
  terminate = function() local f = io.open(%q, "w"); f:write("yes"); f:close() end }
package.loaded.fails_child = { start = function() return server.start_link(M, nil, { trap_exit = true }) end }
assert(require("pogo.supervisor").start_link({ { id = "c", start = { "fails_child", "start" } } }))
error({ code = 1 })
]], marker), "600")
    local ok, e = pcall(function()
      local code, _, err, signal = run { "--cookie", "x", script }
      assert.are.equal(0, signal, err)
      assert.are.equal(1, code, err)
      local lines = {}
      for l in err:gmatch("[^\n]+") do lines[#lines + 1] = l end
      assert.are.equal(2, #lines, err) -- one line an event: the failure, the stop
      assert.matches("^%S+ error ", lines[1])
      assert.matches("the script " .. script .. " failed: {code = 1} module=pogo", lines[1], 1, true)
      assert.matches("^%S+ notice %S+ the script failed %(exit status 1%): stopping %(timeout 15000 ms%) module=pogo$",
        lines[2])
      assert.matches('reason="{code = 1}"', lines[1], 1, true)
      local f = io.open(marker) -- the tree stopped in order: its child's terminate ran
      assert.is_not_nil(f, "the child's terminate did not run")
      f:close()
    end)
    rm_tree(dir)
    assert(ok, e)
  end)

  it("TLS files that cannot be used are one clear line and exit status 1", function()
    local code, _, err = run { "--cookie", "x", "--tls-cert", "/no/such.pem", "--tls-key", "/no/such.key",
                               "--tls-ca", "/no/ca.pem" }
    assert_one_line(code, err, 1)
    assert.are.equal("pogo: tls.cert: cannot read /no/such.pem: No such file or directory\n", err)
  end)

  it("a port already in use is one clear line and exit status 1", function()
    local server = uv.new_tcp()
    assert(server:bind("127.0.0.1", 0))
    assert(server:listen(1, function() end))
    local port = server:getsockname().port
    local code, _, err = run { "--cookie", "x", "--port", tostring(port) }
    server:close()
    assert_one_line(code, err, 1)
    assert.are.equal("pogo: cannot listen on 127.0.0.1:" .. port .. ": address already in use\n", err)
  end)

  it("--http: the page's address is logged once, by the dashboard's module", function()
    local dir = tmpdir()
    write(dir .. "/stop.lua", 'require("pogo").stop()\n', "600")
    local code, out, err = run { "--cookie", "x", "--http", "127.0.0.1:0", dir .. "/stop.lua" }
    rm_tree(dir)
    assert.are.equal(0, code, err)
    local logs = out .. err
    local line = logs:match("[^\n]*the cluster's web page is at http://127%.0%.0%.1:%d+/[^\n]*")
    assert.is_not_nil(line, logs)
    assert.matches(" module=pogo%.dashboard", line)
  end)

  it("--watch-stdin stops the node at the end of a piped stdin, and leaves a file on stdin alone", function()
    local dir = tmpdir()
    local script = dir .. "/stop.lua"
    write(script, 'local pogo = require "pogo"\npogo.sleep(200)\npogo.stop()\n', "600")
    local ok, e = pcall(function()
      -- stdin is /dev/null (libuv's default for a child): it was polled, and libuv aborted
      local code, _, err, signal = run { "--cookie", "x", "--watch-stdin", script }
      assert.are.equal(0, signal, err)
      assert.are.equal(0, code, err)
      assert.matches("--watch-stdin: stdin is a file, not a pipe, socket or terminal: not watched", err, 1, true)
      -- a pipe that reaches its end: the parent is gone
      code, _, err, signal = run({ "--cookie", "x", "--watch-stdin" }, { stdin = "" })
      assert.are.equal(0, signal, err)
      assert.are.equal(0, code, err)
      assert.matches("end of stdin: stopping", err, 1, true)
    end)
    rm_tree(dir)
    assert(ok, e)
  end)

  it("with standard error closed, logs nowhere and stops cleanly (it aborted: fd 2 was libuv's)", function()
    local dir = tmpdir()
    local script = dir .. "/closed.lua"
    write(script, 'local pogo = require "pogo"\nrequire("pogo.log").warning("to a closed stderr")\n'
      .. 'io.stdout:write("up\\n")\npogo.sleep(50)\npogo.stop()\n', "600")
    local ok, e = pcall(function()
      local code, out, _, signal = run({ "--cookie", "x", script }, { prefix = { "sh", "-c", 'exec "$0" "$@" 2>&-' } })
      assert.are.equal(0, signal)
      assert.are.equal(0, code)
      assert.are.equal("up\n", out)
    end)
    rm_tree(dir)
    assert(ok, e)
  end)

  it("passes the options after the script to the script, and --seeds may repeat or hold commas", function()
    local c = cluster.new { timeout_ms = 1000, heartbeat_ms = 200 }
    local ok, err = pcall(function()
      c:start_self { log = false }
      local n = c:start_node { name = "cliargs", script = "spec/support/script_node.lua",
                               args = { "--name", "-x", "--", "last" },
                               extra = { "--seed", "127.0.0.1:1,127.0.0.1:2", "--seeds", "127.0.0.1:3" } }
      c:connect(n)
      assert.are.same({ "--name", "-x", "--", "last", n = 4 },
                      pogo.call({ "script_args", n.name }, "args", 2000))
      local seeds = table.pack(c:rpc(n, "pogo.dist", "seeds"))
      assert.is_true(seeds[1], seeds[2])
      assert.are.same({ "127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3" }, seeds[2])
    end)
    c:teardown()
    assert(ok, err)
  end)
end)

describe("the cookie file", function()
  local dir

  before_each(function() dir = tmpdir() end)
  after_each(function() rm_tree(dir) end)

  it("given with --cookie-file, is used when it is private (0600)", function()
    local c = cluster.new { timeout_ms = 1000, heartbeat_ms = 200 }
    local ok, err = pcall(function()
      c:start_self { log = false }
      write(dir .. "/cookie", "  " .. c.cookie .. "\n", "600")
      local n = c:start_node { name = "cookiefile", cookie = false, extra = { "--cookie-file", dir .. "/cookie" } }
      assert.are.equal(n.name, c:connect(n)) -- the spec's cookie: the link authenticates
    end)
    c:teardown()
    assert(ok, err)
  end)

  it("is refused with its own accurate message: open to others, a directory, empty, missing", function()
    write(dir .. "/open", "secret\n", "644")
    write(dir .. "/group", "secret\n", "620")
    write(dir .. "/empty", " \n", "600")
    assert(uv.fs_mkdir(dir .. "/adir", octal("700")))
    write(dir .. "/plain", "x", "600")
    local cases = {
      { "open", "the cookie file %s can be accessed by group or others (mode 0644); "
                .. "make it private to its owner: chmod 600 %s" },
      { "group", "the cookie file %s can be accessed by group or others (mode 0620); "
                 .. "make it private to its owner: chmod 600 %s" },
      { "adir", "the cookie file %s is a directory, not a file" },
      { "empty", "the cookie file %s is empty" },
      { "missing", "the cookie file %s does not exist" },
      { "plain/cookie", "cannot read the cookie file %s: not a directory" },
    }
    for _, case in ipairs(cases) do
      local path = dir .. "/" .. case[1]
      local code, _, err = run { "--cookie-file", path }
      assert_one_line(code, err, 2)
      assert.are.equal("pogo: " .. case[2]:format(path, path) .. "\n", err)
    end
  end)

  it("is refused when it cannot be read (as root: without CAP_DAC_OVERRIDE, through setpriv)", function()
    local path = dir .. "/unreadable"
    write(path, "secret\n", "000")
    -- root reads any file: drop the capabilities that let it, so the check is real
    local prefix = uv.getuid() == 0 and { "setpriv", "--bounding-set", "-dac_override,-dac_read_search" } or nil
    local code, _, err = run({ "--cookie-file", path }, { prefix = prefix })
    assert_one_line(code, err, 2)
    assert.are.equal("pogo: cannot read the cookie file " .. path .. ": permission denied\n", err)
  end)
end)

describe("pogo.node_name.resolve", function()
  local resolve = require("pogo.node_name").resolve
  local nodes = { "a@127.0.0.1:1", "b@127.0.0.1:2", "b@127.0.0.1:3" }

  it("takes a full name, a short name that one node has, or host:port", function()
    assert.are.equal("a@127.0.0.1:1", resolve("a@127.0.0.1:1", nodes))
    assert.are.equal("a@127.0.0.1:1", resolve("a", nodes))
    assert.are.equal("b@127.0.0.1:3", resolve("127.0.0.1:3", nodes))
  end)

  it("refuses a short name that several nodes share, and an unknown one, saying why", function()
    assert.same({ nil, "more than one node is named b: give the full name" }, { resolve("b", nodes) })
    local _, why = resolve("c", nodes)
    assert.are.equal("no node c in the cluster (nodes: a@127.0.0.1:1, b@127.0.0.1:2, b@127.0.0.1:3)", why)
    assert.are.equal("a@127.0.0.1:1", nodes[1]) -- (the list given is left as it was)
  end)
end)
