--- The commands of `bin/pogo` that look at a running cluster: `status`,
-- `children SUP`, `eval NODE CODE`, `remote NODE`, `top` and `profile NODE`
-- (bin/pogo's COMMANDS table is this module's `COMMANDS`).
--
-- Each command joins the cluster as an observer node (`join`): a node of its
-- own, named `observer-<random>`, started with the cookie (`--cookie`,
-- `--cookie-file`, `$POGO_COOKIE`, `~/.pogo.cookie`) and TLS options given,
-- that dials the seeds once each (`--seeds`) or waits for DNS (`--discover`)
-- and then every node the first one knows, all within `--wait-ms`. It runs
-- no supervisor, so it is in no ring and no distributed supervisor waits
-- for it (see `pogo.observer`); it tells each node it is an observer
-- (`pogo.observer.hello`). A refused handshake (a wrong cookie) or a seed
-- that cannot be reached fails at once with the reason, exit status 1, and
-- so does `--discover` once it knows which step failed (`discovery_failure`:
-- the name, its addresses, the cookie, the nodes there); a
-- malformed seed is a usage error, exit status 2. A node of the cluster it
-- cannot reach, and one the first node knows is down, is listed by `status`
-- and `top` with its error, and `status` then exits 1 (the view is
-- incomplete). When done it disconnects from every node (they do not redial
-- it) and exits.
--
-- Output is for people (aligned tables, sizes in KiB/MiB); `--json` prints
-- the same data as JSON (`pogo.json`: lists are `[]` even when empty) for scripts: one object for `status`,
-- `children`, `eval` and `profile`, one per line for each frame of `top` and each
-- chunk of `remote`. Errors are one line on stderr, "pogo: <what>".
--
-- This module loads nothing heavy until a command runs, so `pogo --help`
-- stays cheap.
-- @module pogo.cli
local M = {}

local EXIT_FAILURE, EXIT_USAGE = 1, 2

-- ---- output ----

local function out(...)
  io.stdout:write(...)
end

local function fail(code, msg)
  io.stdout:flush()
  io.stderr:write("pogo: ", msg, "\n")
  os.exit(code)
end

local function json_encode(v)
  return require("pogo.json").encode(v)
end

local function array(t)
  return require("pogo.json").array(t)
end

--- Bytes as text: "512 B", "1.5 KiB", "12.0 MiB".
-- @tparam ?number n
-- @treturn string
function M.bytes(n)
  if type(n) ~= "number" then return "-" end
  if n < 1024 then return string.format("%.0f B", n) end
  if n < 1024 * 1024 then return string.format("%.1f KiB", n / 1024) end
  if n < 1024 * 1024 * 1024 then return string.format("%.1f MiB", n / 1048576) end
  return string.format("%.2f GiB", n / 1073741824)
end

local function num(n, fmt)
  if type(n) ~= "number" then return "-" end
  return string.format(fmt or "%d", n)
end

local function percent(x)
  if type(x) ~= "number" then return "-" end
  return string.format("%.1f%%", x * 100)
end

local function ms(x)
  if type(x) ~= "number" then return "-" end
  if x < 10 then return string.format("%.2f ms", x) end
  return string.format("%.0f ms", x)
end

--- Rows as an aligned table (columns whose header starts with ">" are
-- aligned right, the ">" not shown).
-- @tparam {string,...} header
-- @tparam {{string,...},...} rows
-- @treturn string
function M.table(header, rows)
  local widths, right = {}, {}
  local head = {}
  for i, h in ipairs(header) do
    right[i] = h:sub(1, 1) == ">"
    head[i] = right[i] and h:sub(2) or h
    widths[i] = #head[i]
  end
  for _, r in ipairs(rows) do
    for i = 1, #header do widths[i] = math.max(widths[i], #tostring(r[i] or "")) end
  end
  local lines = {}
  local function line(cells)
    local parts = {}
    for i = 1, #header do
      local c = tostring(cells[i] or "")
      local pad = string.rep(" ", widths[i] - #c)
      parts[i] = right[i] and pad .. c or (i < #header and c .. pad or c)
    end
    lines[#lines + 1] = table.concat(parts, "  ")
  end
  line(head)
  for _, r in ipairs(rows) do line(r) end
  return table.concat(lines, "\n") .. "\n"
end

local function clock(ms_epoch)
  return os.date("%H:%M:%S", ms_epoch // 1000)
end

-- ---- joining the cluster ----

local function seeds_of(args, opts)
  local list = {}
  for _, s in ipairs(opts.seeds or {}) do list[#list + 1] = s end
  for _, v in ipairs(args.command_seeds or {}) do
    for s in v:gmatch("[^,%s]+") do list[#list + 1] = s end
  end
  return list
end

--- Join the cluster as an observer (see the module text); exits on failure.
-- Every node it connects to is told it is an observer (`pogo.observer.hello`).
-- @tparam table args the parsed command line
-- @tparam table opts bin/pogo's pogo.start options (cookie, seeds, tls, ...)
-- @treturn {string,...} the nodes connected
-- @treturn table the nodes of the cluster it could not reach: node -> why
--  (those it failed to connect to, and those the first node knows are down)
function M.join(args, opts)
  local pogo = require "pogo"
  local observer = require "pogo.observer"
  local wait = args.wait_ms or 5000
  local seeds = seeds_of(args, opts)
  if #seeds == 0 and not opts.discovery then
    fail(EXIT_USAGE, "no way to reach the cluster: give --seeds HOST:PORT or --discover dns:NAME:PORT")
  end
  local o = {}
  for k, v in pairs(opts) do o[k] = v end
  o.seeds = nil -- dialed once each below, not forever
  o.log = false -- the transport's lines would mix with the output
  if not o.name then
    local hex = pogo.core.dist_random(3):gsub(".", function(c) return string.format("%02x", c:byte()) end)
    o.name = "observer-" .. hex
  end
  local ok, err = pcall(pogo.start, o)
  if not ok then fail(EXIT_FAILURE, (tostring(err):gsub("^pogo%.start: ", ""))) end
  observer.set_observer(true)
  local deadline = pogo.now() + wait
  local function left() return math.max(1, deadline - pogo.now()) end
  local first
  local errs = {}
  for _, seed in ipairs(seeds) do
    local okc, name, why = pcall(pogo.connect, seed, left())
    if not okc then -- not an address at all: a usage error
      M.leave()
      local why_not = tostring(name):gsub("^.-pogo%.connect: ", "")
      if not why_not:find(seed, 1, true) then why_not = seed .. ": " .. why_not end
      fail(EXIT_USAGE, "--seeds: " .. why_not .. "; see pogo --help")
    end
    if name then
      first = name
      break
    end
    errs[#errs + 1] = seed .. ": " .. tostring(why)
    if pogo.now() >= deadline then break end
  end
  if not first and opts.discovery then
    local why
    repeat
      first = pogo.nodes()[1]
      why = not first and M.discovery_failure(pogo.dist_info(), pogo.now() >= deadline, wait)
      if not first and not why then pogo.sleep(20) end
    until first or why
    if not first then errs[#errs + 1] = why end
  end
  if not first then
    M.leave()
    fail(EXIT_FAILURE, "cannot join the cluster: " .. table.concat(errs, "; "))
  end
  -- the other nodes: gossip brings them, but the first node's list is the
  -- truth; it also names the nodes it knows to be down
  local me_node = pogo.node()
  local okn, known = pogo.rpc(first, "pogo.observer", "known_nodes", { me_node }, left())
  if not okn or type(known) ~= "table" then
    local okp, nodes = pogo.rpc(first, "pogo", "nodes", {}, left())
    known = { nodes = okp and nodes or {}, down = {} }
  end
  -- the other observers (their tools may leave meanwhile: not listed as down)
  for _, n in ipairs(known.observers or {}) do observer.hello(n) end
  local down = {}
  for n, why in pairs(known.down or {}) do down[n] = why end
  local me, tag, pending = pogo.self(), {}, 0
  local connected = {}
  for _, n in ipairs(pogo.nodes()) do connected[n] = true end
  connected[first] = "told" -- known_nodes told it this is an observer
  local want = {}
  for _, n in ipairs(known.nodes or {}) do want[#want + 1] = n end
  for _, n in ipairs(pogo.nodes()) do want[#want + 1] = n end -- gossip's, dialed meanwhile
  local seen = {}
  for _, n in ipairs(want) do
    if n ~= me_node and not seen[n] and connected[n] ~= "told" then
      seen[n] = true
      pending = pending + 1
      pogo.spawn(function()
        local why
        if not connected[n] then
          local okc, name, cerr = pcall(pogo.connect, n, left())
          why = not okc and tostring(name) or (not name and tostring(cerr)) or nil
        end
        -- tell it this node is an observer: never listed as a node that is
        -- down, nor shown coming and going on the web page's timeline
        if not why then pogo.rpc(n, "pogo.observer", "hello", { me_node }, left()) end
        pogo.send(me, { tag, n, why })
      end)
    end
  end
  while pending > 0 do
    local m = pogo.receive(function(x) return type(x) == "table" and x[1] == tag end, left())
    if not m then break end
    pending = pending - 1
    if m[3] then down[m[2]] = "cannot connect: " .. m[3] end
  end
  for n in pairs(seen) do
    if not down[n] and not M.is_connected(n) then down[n] = "cannot connect: timeout" end
    if observer.known_observer(n) then down[n] = nil end
  end
  return pogo.nodes(), down
end

--- Which step of `--discover` failed, from `pogo.dist_info()`, or nil while
-- it may still reach a node: the name did not resolve (c-ares's reason),
-- it resolved to no address, the cookie was refused at an address, or no
-- node answered at any of them (each with why). Before `final` (the wait
-- is over) it answers only once it knows: a round of DNS came back without
-- addresses, a node refused the cookie, or every address failed a dial.
-- @tparam table info `pogo.dist_info()`
-- @tparam boolean final whether the wait (`wait_ms`) is over
-- @tparam number wait_ms for the message
-- @treturn ?string the failure, "--discover: ..."
function M.discovery_failure(info, final, wait_ms)
  local d = info.discovery
  if not d then return "--discover: discovery is not running" end
  if d.rounds == 0 then
    return final and string.format("--discover: no answer from DNS about %s within %d ms", d.name, wait_ms) or nil
  end
  if d.status == "not found" or d.status == "failed" then
    return string.format("--discover: %s did not resolve: %s", d.name, d.error)
  end
  if #d.addrs == 0 then
    return string.format("--discover: %s resolved to no address%s", d.name, d.error and " (" .. d.error .. ")" or "")
  end
  local addrs, errs, failed = {}, {}, 0
  for i, a in ipairs(d.addrs) do addrs[i] = a end
  table.sort(addrs) -- (DNS may rotate them)
  for _, a in ipairs(addrs) do
    local e
    for _, t in ipairs(info.targets) do
      if t.addr == a then e = t.error end
    end
    if e and e:find("authentication failed", 1, true) then
      return string.format("--discover: the cookie was refused at %s (%s)", a, e)
    end
    if e then failed = failed + 1 end
    errs[#errs + 1] = string.format("%s (%s)", a, e or "no answer within " .. wait_ms .. " ms")
  end
  if failed < #addrs and not final then return nil end
  return string.format("--discover: no node answered at the addresses of %s: %s", d.name, table.concat(errs, ", "))
end

--- Whether this node is connected to node `name` now.
-- @tparam string name
-- @treturn boolean
function M.is_connected(name)
  for _, n in ipairs(require("pogo").nodes()) do
    if n == name then return true end
  end
  return false
end

--- Leave the cluster: disconnect from every node (so that none redials
-- this one) and close the links.
function M.leave()
  local pogo = require "pogo"
  for _, n in ipairs(pogo.nodes()) do pogo.disconnect(n) end
  pogo.dist_stop()
end

local function finish(code)
  M.leave()
  io.stdout:flush()
  os.exit(code)
end

--- The full name of node `spec` among `nodes` (`pogo.node_name.resolve`).
-- @function resolve
M.resolve = require("pogo.node_name").resolve

local function target_node(args, opts)
  local nodes = M.join(args, opts)
  local node, why = M.resolve(args.node, nodes)
  if not node then
    M.leave()
    fail(EXIT_FAILURE, why)
  end
  return node
end

-- ---- status ----

local function status_text(snap)
  local lines = {}
  local silent = 0
  for _, n in ipairs(snap.nodes) do
    if n.error then silent = silent + 1 end
  end
  lines[#lines + 1] = string.format("cluster of %d node%s, seen from %s at %s%s", #snap.nodes,
    #snap.nodes == 1 and "" or "s", snap.via, clock(snap.time),
    silent > 0 and string.format(" (%d did not answer: this view is incomplete)", silent) or "")
  local rows = {}
  for _, n in ipairs(snap.nodes) do
    if n.error then
      rows[#rows + 1] = { n.name, "-", "-", "-", "-", "-", "-", "no answer: " .. n.error }
    else
      rows[#rows + 1] = { n.name, num(n.processes), num(n.children), M.bytes(n.memory.lua), M.bytes(n.memory.rss),
                          num(n.link_count), ms(n.rtt_ms), n.http and ("http://" .. n.http .. "/") or "" }
    end
  end
  lines[#lines + 1] = ""
  lines[#lines + 1] = M.table({ "NODE", ">PROCESSES", ">CHILDREN", ">LUA HEAP", ">RSS", ">LINKS", ">RTT", "PAGE" },
                              rows)
  for _, s in ipairs(snap.supervisors) do
    local nodes = 0
    for _ in pairs(s.per_node) do nodes = nodes + 1 end
    lines[#lines + 1] = string.format("supervisor %s (scope %s): %d children running, %d specs, ring of %d node%s; "
      .. "%d restarts, %d moves", s.name, s.scope, s.children, s.specs, #s.ring, #s.ring == 1 and "" or "s",
      s.restarts, s.moves)
    local srows = {}
    for _, n in ipairs(snap.nodes) do
      if s.per_node[n.name] or s.shares[n.name] then
        srows[#srows + 1] = { n.name, percent(s.shares[n.name]), num(s.per_node[n.name]) }
      end
    end
    lines[#lines + 1] = (M.table({ "NODE", ">RING SHARE", ">CHILDREN" }, srows):gsub("[^\n]+", "  %0"))
  end
  if #snap.supervisors == 0 then lines[#lines + 1] = "no distributed supervisor runs in the cluster\n" end
  return table.concat(lines, "\n")
end

local function json_snapshot(snap)
  local listed = {}
  for _, n in ipairs(snap.nodes) do listed[n.name] = true end
  local function links_of(n) -- to the nodes listed (not to observers)
    local list = array()
    for peer, l in pairs(n.dist and n.dist.links or {}) do
      if listed[peer] then list[#list + 1] = { peer = peer, rtt_ms = l.rtt_avg_ms, messages_in = l.messages_in,
                          messages_out = l.messages_out, bytes_in = l.bytes_in, bytes_out = l.bytes_out } end
    end
    table.sort(list, function(a, b) return a.peer < b.peer end)
    return list
  end
  local nodes, complete = array(), true
  for i, n in ipairs(snap.nodes) do
    complete = complete and not n.error
    nodes[i] = n.error and { name = n.name, error = n.error } or {
      name = n.name, processes = n.processes, run_queue = n.run_queue, children = n.children,
      memory = n.memory, messages_delivered = n.messages, http = n.http,
      transport = { messages_in = n.dist.messages_in, messages_out = n.dist.messages_out,
                    bytes_in = n.dist.bytes_in, bytes_out = n.dist.bytes_out },
      links = links_of(n), rates = n.rates,
    }
  end
  local sups = array()
  for i, s in ipairs(snap.supervisors) do
    sups[i] = { name = s.name, scope = s.scope, children = s.children, specs = s.specs, ring = array(s.ring),
                shares = s.shares, per_node = s.per_node, restarts = s.restarts, moves = s.moves }
  end
  return { time = snap.time, via = snap.via, complete = complete, nodes = nodes, observers = array(snap.observers),
           supervisors = sups, links = array(snap.links) }
end

local function run_status(args, opts)
  local _, down = M.join(args, opts)
  local snap = require("pogo.observer").gather { timeout_ms = args.wait_ms or 5000, down = down }
  if args.json then out(json_encode(json_snapshot(snap)), "\n") else out(status_text(snap)) end
  local failed = false
  for _, n in ipairs(snap.nodes) do failed = failed or n.error ~= nil end
  finish(failed and EXIT_FAILURE or 0)
end

-- ---- children ----

local function run_children(args, opts)
  local pogo = require "pogo"
  local observer = require "pogo.observer"
  local _, down = M.join(args, opts)
  local snap = observer.gather { timeout_ms = args.wait_ms or 5000, down = down }
  local on = args.on
  if on then -- as eval's NODE: its full name, its name before @, or host:port
    local names = {}
    for _, n in ipairs(snap.nodes) do names[#names + 1] = n.name end
    local why
    on, why = M.resolve(on, names)
    if not on then
      M.leave()
      fail(EXIT_FAILURE, "--on: " .. why)
    end
  end
  -- SUP: a scope, else a name (a supervisor started with a scope and no name shows its scope)
  local via
  local s = observer.find_supervisor(snap, args.sup)
  for _, n in ipairs(s and snap.nodes or {}) do
    if s.per_node[n.name] ~= nil and (not via or n.name < via) then via = n.name end
  end
  if not via then
    M.leave()
    fail(EXIT_FAILURE, "no node of the cluster runs a distributed supervisor named " .. args.sup)
  end
  local ok, res, why = pogo.rpc(via, "pogo.observer", "children",
                                { s.scope, { node = on, fresh = true, scope = true } },
                                args.wait_ms or 5000)
  if not ok or not res then
    M.leave()
    fail(EXIT_FAILURE, "cannot read the children of " .. args.sup .. " on " .. via .. ": "
                       .. tostring(ok and why or res))
  end
  if args.json then
    out(json_encode({ supervisor = res.supervisor, via = via, total = res.total, per_node = res.per_node,
                      children = array(res.entries) }), "\n")
  else
    local rows = {}
    for _, e in ipairs(res.entries) do rows[#rows + 1] = { e.id, e.node, e.pid } end
    if #rows > 0 then out(M.table({ "ID", "NODE", "PID" }, rows)) end
    local nodes = 0
    for _ in pairs(res.per_node) do nodes = nodes + 1 end
    out(string.format("%d children of %s on %d node%s (global view from %s)\n", #rows, args.sup, nodes,
      nodes == 1 and "" or "s", via))
  end
  finish(0)
end

-- ---- eval ----

local function print_result(r, json, node)
  if json then
    out(json_encode({ node = node, ok = r.ok, results = r.ok and array(r.json) or nil, output = r.output,
                      error = r.error }), "\n")
    return
  end
  if r.output and r.output ~= "" then out(r.output) end
  if r.ok then
    for i = 1, r.n or 0 do out(r.text[i], "\n") end
  else
    io.stderr:write(tostring(r.error), "\n")
  end
end

local function run_eval(args, opts)
  local pogo = require "pogo"
  local node = target_node(args, opts)
  local ok, r = pogo.rpc(node, "pogo.observer.console", "eval", { args.code }, args.call_timeout_ms or 60000)
  if not ok then
    M.leave()
    fail(EXIT_FAILURE, "eval on " .. node .. " failed: " .. tostring(r))
  end
  print_result(r, args.json, node)
  finish(r.ok and 0 or EXIT_FAILURE)
end

-- ---- profile ----

-- pogo.profile on NODE for --ms, its longest lines printed.
local function run_profile(args, opts)
  local pogo = require "pogo"
  local node = target_node(args, opts)
  local for_ms, top = args.ms or 2000, args.top or 20
  local ok, r, why = pogo.rpc(node, "pogo.profile", "run", { for_ms }, for_ms + (args.wait_ms or 5000))
  if not ok or not r then
    M.leave()
    fail(EXIT_FAILURE, "profile of " .. node .. " failed: " .. tostring(ok and why or r))
  end
  if args.json then
    local lines = array()
    for i = 1, math.min(top, #r.lines) do lines[i] = r.lines[i] end
    out(json_encode({ node = node, wall_ms = r.wall_ms, slices_ms = r.slices_ms, outside_ms = r.outside_ms,
                      lines = lines }), "\n")
  else
    out(string.format("profile of %s for %d ms\n", node, for_ms), require("pogo.profile").format(r, top), "\n")
  end
  finish(0)
end

-- ---- remote ----

-- Lines of stdin as messages {tag, line} to `me` ({tag} at its end): from a
-- tty through GNU readline when lua-readline is there (line editing,
-- history), else read by libuv; a file is read at once. `prompt` is shown
-- first; the returned `prompt(p)` shows the next one (after each line).
local function stdin_lines(me, tag, prompt)
  local uv = require "luv"
  local pogo = require "pogo"
  local kind = uv.guess_handle(0)
  if kind == "file" then
    for line in io.lines() do pogo.send(me, { tag, line }) end
    pogo.send(me, { tag })
    return { close = function() end, prompt = function() end }
  end
  local has_rl, rl = false, nil
  if kind == "tty" then has_rl, rl = pcall(require, "readline") end
  if has_rl then
    local poll = uv.new_poll(0)
    local installed = false
    local function handler(line)
      if installed then rl.handler_remove() end
      installed = false
      if line then
        if line:find("%S") then rl.add_history(line) end
        pogo.send(me, { tag, line })
      else
        pogo.send(me, { tag })
      end
    end
    rl.handler_install(prompt, handler)
    installed = true
    poll:start("r", function() if installed then rl.read_char() end end)
    return {
      prompt = function(p)
        rl.handler_install(p, handler)
        installed = true
      end,
      close = function()
        if installed then rl.handler_remove() end
        installed = false
        if not poll:is_closing() then poll:close() end
      end,
    }
  end
  local stream = kind == "tty" and uv.new_tty(0, true) or uv.new_pipe(false)
  if kind ~= "tty" then stream:open(0) end
  if kind == "tty" then io.stdout:write(prompt); io.stdout:flush() end
  local buf = ""
  stream:read_start(function(_, data)
    if data then
      buf = buf .. data
      while true do
        local line, rest = buf:match("^([^\n]*)\n(.*)$")
        if not line then break end
        buf = rest
        pogo.send(me, { tag, (line:gsub("\r$", "")) })
      end
    else
      if buf ~= "" then pogo.send(me, { tag, buf }) end
      buf = ""
      pogo.send(me, { tag })
      stream:read_stop()
    end
  end)
  return {
    prompt = function(p) if kind == "tty" then io.stdout:write(p); io.stdout:flush() end end,
    close = function() if not stream:is_closing() then stream:close() end end,
  }
end

local function run_remote(args, opts)
  local pogo = require "pogo"
  local uv = require "luv"
  local node = target_node(args, opts)
  local call_timeout = args.call_timeout_ms or 60000
  local function open()
    local ok, session = pogo.rpc(node, "pogo.observer.console", "open", { pogo.self() }, args.wait_ms or 5000)
    if not ok then
      M.leave()
      fail(EXIT_FAILURE, "cannot open a console on " .. node .. ": " .. tostring(session))
    end
    return session
  end
  local session = open()
  local tty = uv.guess_handle(0) == "tty"
  local short = node:match("^([^@]*)@") or node
  local me, tag = pogo.self(), {}
  if tty and not args.json then
    out(string.format("pogo console on %s (Lua evaluated in a process there; Ctrl-D leaves)\n", node))
  end
  local first_prompt = short .. "> "
  local input = stdin_lines(me, tag, first_prompt)
  local pending, code = nil, 0
  local nodedown_ref = pogo.monitor(session)
  while true do
    local m = pogo.receive(function(msg)
      return type(msg) == "table" and (msg[1] == tag or (msg[1] == "DOWN" and msg[2] == nodedown_ref))
    end)
    if m[1] == "DOWN" then
      io.stderr:write("pogo: the console on ", node, " is gone: ", tostring(m[4]), "\n")
      code = EXIT_FAILURE
      break
    end
    local line = m[2]
    if line == nil then
      if pending then io.stderr:write("pogo: incomplete chunk at the end of input\n") end
      if tty then out("\n") end
      break
    end
    local chunk = pending and (pending .. "\n" .. line) or line
    -- complete? (compiled here only to know; it runs there)
    local f, err = load("return " .. chunk, "=remote")
    if not f then f, err = load(chunk, "=remote") end
    if not f and err and err:find("<eof>$") then
      pending = chunk
      input.prompt(">> ")
    else
      pending = nil
      if chunk:find("%S") then
        local okc, r = pcall(pogo.call, session, { "eval", chunk }, call_timeout)
        if okc then
          print_result(r, args.json, node)
        elseif tostring(r):find("^timeout") then
          -- the chunk still runs there: end it with its session, go on in a fresh one
          pogo.demonitor(nodedown_ref)
          pogo.exit(session, "kill")
          session = open()
          nodedown_ref = pogo.monitor(session)
          io.stderr:write(string.format("pogo: the chunk ran past --call-timeout-ms (%d ms): it was ended with "
            .. "its session, and a fresh session started (globals lost)\n", call_timeout))
        else
          io.stderr:write("pogo: ", tostring(r), "\n")
          if tostring(r):find("^noconnection") or tostring(r):find("^noproc") then
            code = EXIT_FAILURE
            break
          end
        end
        io.stdout:flush()
      end
      input.prompt(first_prompt)
    end
  end
  input.close()
  finish(code)
end

-- ---- top ----

local function top_text(snap, events, terminal, width)
  local lines = {}
  lines[#lines + 1] = string.format("pogo top: %d node%s, seen from %s at %s%s", #snap.nodes,
    #snap.nodes == 1 and "" or "s", snap.via, clock(snap.time), terminal and "   (q quits)" or "")
  local rows, silent = {}, {}
  for _, n in ipairs(snap.nodes) do
    if n.error then -- (its figures are dashes; why, under the table)
      rows[#rows + 1] = { n.name, "-", "-", "-", "-", "-", "-", "-", "-", "-", "-" }
      silent[#silent + 1] = "  " .. n.name .. ": no answer: " .. n.error
    else
      local r = n.rates or {}
      rows[#rows + 1] = { n.name, num(n.processes), num(n.run_queue), num(n.children), M.bytes(n.memory.lua),
                          num(r.delivered, "%.0f"), num(r.messages_in, "%.0f"), num(r.messages_out, "%.0f"),
                          r.bytes_in and M.bytes(r.bytes_in) .. "/s" or "-",
                          r.bytes_out and M.bytes(r.bytes_out) .. "/s" or "-", ms(n.rtt_ms) }
    end
  end
  lines[#lines + 1] = M.table({ "NODE", ">PROCS", ">RUNQ", ">CHILDREN", ">LUA HEAP", ">MSG/S", ">IN/S", ">OUT/S",
                                ">BYTES IN", ">BYTES OUT", ">RTT" }, rows)
  for _, l in ipairs(silent) do lines[#lines + 1] = l end
  local srows = {}
  for _, s in ipairs(snap.supervisors) do
    srows[#srows + 1] = { s.name, num(s.children), num(#s.ring), num(s.restarts), num(s.moves) }
  end
  if #srows > 0 then
    lines[#lines + 1] = M.table({ "SUPERVISOR", ">CHILDREN", ">RING", ">RESTARTS", ">MOVES" }, srows)
  end
  if #events > 0 then
    lines[#lines + 1] = "latest events"
    for i = math.max(1, #events - 9), #events do
      local e = events[i]
      lines[#lines + 1] = string.format("  %s  %-7s %s %s on %s%s", clock(e.time), e.kind, e.supervisor or "",
        e.id or "", e.node or "", e.detail and (": " .. e.detail) or "")
    end
  end
  local text = table.concat(lines, "\n")
  if width then -- a terminal: no line wider than it
    text = text:gsub("[^\n]+", function(l) return #l > width and l:sub(1, width) or l end)
  end
  return text .. "\n"
end

local function run_top(args, opts)
  local pogo = require "pogo"
  local uv = require "luv"
  local observer = require "pogo.observer"
  local _, down = M.join(args, opts)
  local iterations = args.once and 1 or args.iterations
  local interval = args.interval_ms or 1000
  local tty = uv.guess_handle(1) == "tty" and not args.json
  local me, quit = pogo.self(), {}
  local handles = {}
  for _, sig in ipairs { "sigint", "sigterm" } do
    local h = uv.new_signal()
    h:start(sig, function() pogo.send(me, quit) end)
    handles[#handles + 1] = h
  end
  local keys
  local screen = tty and uv.new_tty(1, false) -- its width
  if tty and uv.guess_handle(0) == "tty" then
    keys = uv.new_tty(0, true)
    keys:set_mode(1) -- raw: q and Ctrl-C arrive as bytes
    keys:read_start(function(_, data)
      if not data or data:find("[qQ\3\4]") then pogo.send(me, quit) end
    end)
  end
  local prev, since, events = nil, {}, {}
  local n = 0
  while true do
    local snap = observer.gather { timeout_ms = math.max(interval, 500), since = since, down = down }
    observer.rates(prev, snap)
    prev, since = snap, snap.seqs
    for _, e in ipairs(snap.events) do events[#events + 1] = e end
    while #events > 100 do table.remove(events, 1) end
    n = n + 1
    if args.json then
      local j = json_snapshot(snap)
      j.events = array(snap.events)
      out(json_encode(j), "\n")
    elseif tty then
      local width = screen and screen:get_winsize() or 0
      -- (libuv's raw mode keeps the terminal's newline translation)
      out("\27[H\27[2J", top_text(snap, events, true, width > 0 and width or nil))
    else
      out(top_text(snap, events, false, nil), "\n")
    end
    io.stdout:flush()
    if iterations and n >= iterations then break end
    if pogo.receive(function(m) return m == quit end, interval) then break end
  end
  if keys then
    keys:read_stop()
    uv.tty_reset_mode()
    keys:close()
  end
  if screen then screen:close() end
  for _, h in ipairs(handles) do h:close() end
  finish(0)
end

-- ---- the commands (bin/pogo's COMMANDS) ----

local function positive(name)
  return function(s)
    local v = math.tointeger(tonumber(s))
    if v and v >= 1 then return v end
    return nil, name .. ": a positive integer expected, got '" .. s .. "'"
  end
end

-- The options every command takes after its name too (bin/pogo takes them
-- before it): where the cluster is and how to get in.
local function connection_options(cmd)
  cmd:option("--seeds --seed", 'seeds, "host:port" or node names (repeat it or separate with commas)')
    :argname("A[,B...]"):count("*"):target("command_seeds")
  cmd:option("--cookie", "the cluster's cookie (prefer $POGO_COOKIE or --cookie-file)"):argname("COOKIE")
  cmd:option("--cookie-file", "read the cookie from FILE (mode 0600)"):argname("FILE")
  cmd:option("--discover", "find the nodes in DNS: dns:NAME:PORT or dns:_service._tcp.NAME")
    :argname("dns:NAME:PORT")
  cmd:option("--dns-server", "the DNS server --discover asks"):argname("IP:PORT")
  cmd:option("--tls-cert", "this node's certificate, for a cluster on TLS (with --tls-key, --tls-ca)")
    :argname("FILE")
  cmd:option("--tls-key", "the private key of --tls-cert"):argname("FILE")
  cmd:option("--tls-ca", "the CA of the cluster's certificates"):argname("FILE")
  cmd:option("--wait-ms", "how long to wait for the cluster and for each answer, ms (default 5000)")
    :argname("N"):convert(positive("--wait-ms"))
end

local EXIT_TEXT = "Exit status: 0 done; 1 the cluster could not be joined or the command failed (one line on "
  .. "stderr, \"pogo: ...\"); 2 a usage error (an option, a malformed --seeds)."

-- A command: its own arguments (`add`), then the connection options and
-- --json; `exit_text` (EXIT_TEXT) ends its --help.
local function command(summary, json_what, run, add, exit_text)
  return {
    summary = summary,
    run = run,
    configure = function(cmd)
      if add then add(cmd) end
      connection_options(cmd)
      cmd:flag("--json", "print " .. json_what .. " as JSON")
      cmd:epilog(exit_text or EXIT_TEXT)
    end,
  }
end

-- NODE, and how long the code may run there.
local function on_node(what)
  return function(cmd)
    cmd:argument("node", "the node: its full name, its name before @, or host:port"):argname("NODE")
    if what == "CODE" then cmd:argument("code", "a Lua expression or chunk"):argname("CODE") end
    cmd:option("--call-timeout-ms", "how long " .. what .. " may run, ms (default 60000)"):argname("N")
      :convert(positive("--call-timeout-ms"))
  end
end

--- bin/pogo's subcommands: name -> {summary =, configure = fn(argparse
-- command), run = fn(args, opts)} (see bin/pogo's header).
M.COMMANDS = {
  status = command("nodes, ring shares, children, processes per node", "the cluster", run_status, nil,
    "A node of the cluster that cannot be reached or does not answer within --wait-ms is listed with its "
    .. "error (\"error\" in --json, where \"complete\" is then false).\n"
    .. "Exit status: 0 every node answered; 1 a node did not answer (the view is incomplete; it is printed "
    .. "all the same) or the cluster could not be joined (nothing printed); 2 a usage error (an option, "
    .. "a malformed --seeds)."),
  children = command("the children of supervisor SUP (the global view)", "the children", run_children,
    function(cmd)
      cmd:argument("sup", "the supervisor's scope, or its name"):argname("SUP")
      cmd:option("--on", "only the children running on NODE: its full name, its name before @, or host:port")
        :argname("NODE")
    end),
  eval = command("evaluate Lua CODE in a process of NODE", "the results", run_eval, on_node("CODE")),
  remote = command("a Lua console on NODE (as iex --remsh)", "each chunk's results (one line each)", run_remote,
    on_node("a chunk")),
  profile = command("where NODE's processes spend their time, by line (pogo.profile)", "the longest lines",
    run_profile, function(cmd)
      cmd:argument("node", "the node: its full name, its name before @, or host:port"):argname("NODE")
      cmd:option("--ms", "how long to profile, ms (default 2000)"):argname("N"):convert(positive("--ms"))
      cmd:option("--top", "how many files and lines to print (default 20)"):argname("N"):convert(positive("--top"))
    end),
  top = command("a live view of the nodes (q or Ctrl-C quits)", "each refresh (one line each)", run_top,
    function(cmd)
      cmd:option("--interval-ms", "time between refreshes, ms (default 1000)"):argname("N")
        :convert(positive("--interval-ms"))
      cmd:option("-n --iterations", "stop after N refreshes"):argname("N"):convert(positive("--iterations"))
      cmd:flag("--once", "one refresh, then exit (as -n 1)")
    end),
}

return M
