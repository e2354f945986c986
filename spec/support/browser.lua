--- A real browser for specs, benches and `make screenshot`: Debian's headless
-- Chromium driven through the DevTools protocol over a pipe
-- (--remote-debugging-pipe: commands go to its fd 3, answers and events come
-- from its fd 4, each a JSON text ended by a NUL byte), so no WebSocket
-- client and nothing from npm is needed.
--
--   local browser = require "support.browser"
--   local b = browser.launch { width = 1280, height = 900 }
--   local page = b:open("http://127.0.0.1:8080/")  -- waits for the load event
--   page:wait("document.querySelectorAll('[data-node]').length === 3", 5000)
--   local n = page:eval("document.title")
--   page:screenshot("/tmp/page.png")
--   b:close()                                      -- always (a finally)
--
-- Chromium runs with a fresh --user-data-dir, in a process group of its own
-- (detached), so `close` ends it and every helper process it started by
-- killing that group by its pid, after asking it to close. Every wait is
-- bounded. The calls block the calling process (they receive), so they
-- work from a spec's main chunk.
local pogo = require "pogo"
local uv = require "luv"
local cjson = require "cjson"
local mime = require "mime" -- LuaSocket's (Debian's lua-socket): base64 of the screenshots
local certs = require "pogo.local_cluster.certs" -- for its private temporary directories

local M = {}

local FLAGS = { "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-extensions",
  "--disable-default-apps", "--mute-audio", "--hide-scrollbars", "--remote-debugging-pipe" }

--- The Chromium binary, or nil.
function M.find()
  for _, p in ipairs { os.getenv("CHROMIUM") or "", "/usr/bin/chromium", "/usr/bin/chromium-browser" } do
    if p ~= "" and uv.fs_access(p, "X") then return p end
  end
end

--- The Chromium binary, installing Debian's `chromium` when it is missing
-- (as root, as `make test`'s deps do); raises if it cannot be had.
function M.ensure()
  local bin = M.find()
  if bin then return bin end
  if uv.getuid and uv.getuid() == 0 then
    os.execute("DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -qq chromium >/dev/null 2>&1")
  end
  bin = M.find()
  if not bin then error("chromium is not installed (apt-get install chromium)") end
  return bin
end

-- This process's environment without the sanitizers' settings (under make
-- asan the specs preload ASan, which Chromium must not get).
local function browser_env()
  local env = {}
  for k, v in pairs(uv.os_environ()) do
    if k ~= "LD_PRELOAD" and not k:match("^[A-Z]+SAN_OPTIONS$") then env[#env + 1] = k .. "=" .. v end
  end
  return env
end

local Browser = {}
Browser.__index = Browser
local Page = {}
Page.__index = Page

--- Start Chromium.
-- @tparam[opt] table opts `width` (1280), `height` (900), `timeout_ms`
--  (10000: the longest wait for an answer)
function M.launch(opts)
  opts = opts or {}
  local bin = M.ensure()
  local dir = certs.tmpdir() -- the profile (mktemp -d: mode 0700)
  local args = {}
  for i, f in ipairs(FLAGS) do args[i] = f end
  args[#args + 1] = "--user-data-dir=" .. dir
  args[#args + 1] = string.format("--window-size=%d,%d", opts.width or 1280, opts.height or 900)
  args[#args + 1] = "about:blank"
  local to_chrome, from_chrome = uv.new_pipe(false), uv.new_pipe(false)
  local errp = uv.new_pipe(false)
  local self = setmetatable({ dir = dir, next_id = 0, me = pogo.self(), tag = {}, timeout = opts.timeout_ms or 10000,
                              buf = "", events = {}, err = "" }, Browser)
  local handle, pid
  handle, pid = uv.spawn(bin, { args = args, stdio = { nil, nil, errp, to_chrome, from_chrome }, detached = true,
                                env = browser_env() },
    function(code, signal)
      self.exited = { code = code, signal = signal }
      handle:close()
      pogo.send(self.me, { self.tag, "exit" })
    end)
  if not handle then error("cannot start chromium: " .. tostring(pid)) end
  self.handle, self.pid, self.to, self.from, self.errp = handle, pid, to_chrome, from_chrome, errp
  errp:read_start(function(_, data)
    if data and #self.err < 65536 then self.err = self.err .. data end
  end)
  from_chrome:read_start(function(_, data)
    if not data then return end
    self.buf = self.buf .. data
    while true do
      local i = self.buf:find("\0", 1, true)
      if not i then break end
      local text = self.buf:sub(1, i - 1)
      self.buf = self.buf:sub(i + 1)
      local ok, msg = pcall(cjson.decode, text)
      if ok then pogo.send(self.me, { self.tag, "msg", msg }) end
    end
  end)
  return self
end

-- Handle one message from Chromium: answers are returned, events queued.
local function take(self, m)
  local msg = m[3]
  if msg.id then return msg end
  self.events[#self.events + 1] = msg
end

--- Send a DevTools command and wait for its answer.
-- @tparam string method
-- @tparam[opt] table params
-- @tparam[opt] string session
-- @return the result table (raises on an error answer or a timeout)
function Browser:send(method, params, session)
  self.next_id = self.next_id + 1
  local id = self.next_id
  local cmd = { id = id, method = method, params = params or {} }
  if session then cmd.sessionId = session end
  self.to:write(cjson.encode(cmd) .. "\0")
  local deadline = uv.now() + self.timeout
  while true do
    local m = pogo.receive(function(x) return type(x) == "table" and x[1] == self.tag end,
                           math.max(0, deadline - uv.now()))
    if not m then error("chromium did not answer " .. method .. " within " .. self.timeout .. " ms") end
    if m[2] == "exit" then error("chromium exited: " .. self.err:sub(-2000)) end
    local answer = take(self, m)
    if answer and answer.id == id then
      if answer.error then error(method .. ": " .. tostring(answer.error.message)) end
      return answer.result
    end
    uv.update_time()
  end
end

--- Wait for event `method` (of `session`, if given), up to `timeout_ms`.
function Browser:event(method, session, timeout_ms)
  local deadline = uv.now() + (timeout_ms or self.timeout)
  while true do
    for i, e in ipairs(self.events) do
      if e.method == method and (not session or e.sessionId == session) then
        table.remove(self.events, i)
        return e
      end
    end
    local m = pogo.receive(function(x) return type(x) == "table" and x[1] == self.tag end,
                           math.max(0, deadline - uv.now()))
    if not m then error("no " .. method .. " within " .. (timeout_ms or self.timeout) .. " ms") end
    if m[2] == "exit" then error("chromium exited: " .. self.err:sub(-2000)) end
    take(self, m)
    uv.update_time()
  end
end

--- Open a tab on `url` and wait for its load event.
-- @tparam string url
-- @tparam[opt] table opts `network` (true: record the requests the page
--  makes, see `Page:requests`)
-- @return the page
function Browser:open(url, opts)
  local t = self:send("Target.createTarget", { url = "about:blank" })
  local s = self:send("Target.attachToTarget", { targetId = t.targetId, flatten = true })
  local page = setmetatable({ b = self, session = s.sessionId, target = t.targetId }, Page)
  if opts and opts.network then self:send("Network.enable", {}, page.session) end
  self:send("Page.enable", {}, page.session)
  self:send("Page.navigate", { url = url }, page.session)
  self:event("Page.loadEventFired", page.session)
  return page
end

--- Evaluate a JavaScript expression in the page (promises are awaited).
-- @tparam string expr
-- @return its value (JSON-able values only)
function Page:eval(expr)
  local r = self.b:send("Runtime.evaluate", { expression = expr, returnByValue = true, awaitPromise = true },
                        self.session)
  if r.exceptionDetails then
    local ex = r.exceptionDetails
    error("javascript: " .. tostring(ex.exception and ex.exception.description or ex.text))
  end
  local v = r.result and r.result.value
  if v == cjson.null then return nil end
  return v
end

--- Evaluate `expr` every 25 ms until it is truthy (in JavaScript's sense:
-- not false, 0, "", null), at most `timeout_ms`; returns its value and the
-- ms waited, or raises.
function Page:wait(expr, timeout_ms, what)
  local t0 = uv.hrtime()
  local deadline = uv.now() + (timeout_ms or 5000)
  while true do
    local v = self:eval(expr)
    if v and v ~= 0 and v ~= "" then return v, (uv.hrtime() - t0) / 1e6 end
    uv.update_time()
    if uv.now() >= deadline then
      error("timed out waiting for " .. (what or expr) .. " in the page", 2)
    end
    pogo.sleep(25)
  end
end

--- The URLs the page requested so far (with `open(url, {network = true})`).
-- @treturn {string,...}
function Page:requests()
  local urls, keep = {}, {}
  for _, e in ipairs(self.b.events) do
    if e.method == "Network.requestWillBeSent" and e.sessionId == self.session then
      urls[#urls + 1] = e.params.request.url
    else
      keep[#keep + 1] = e
    end
  end
  self.b.events = keep
  self.seen = self.seen or {}
  for _, u in ipairs(urls) do self.seen[#self.seen + 1] = u end
  return self.seen
end

--- Reload the page and wait for its load event.
function Page:reload()
  self.b:send("Page.reload", { ignoreCache = true }, self.session)
  self.b:event("Page.loadEventFired", self.session)
end

--- A PNG of the page (the viewport of `width` x `height`) written to `path`.
function Page:screenshot(path, width, height)
  if width then
    self.b:send("Emulation.setDeviceMetricsOverride", { width = width, height = height, deviceScaleFactor = 1,
                                                        mobile = false }, self.session)
  end
  local r = self.b:send("Page.captureScreenshot", { format = "png", captureBeyondViewport = false }, self.session)
  local f = assert(io.open(path, "wb"))
  f:write((mime.unb64(r.data)))
  f:close()
end

--- Close Chromium: ask it, then kill its process group by pid; remove its
-- profile directory. Safe to call twice.
function Browser:close()
  if self.closed then return end
  self.closed = true
  if not self.exited then
    pcall(function()
      self.next_id = self.next_id + 1
      self.to:write(cjson.encode({ id = self.next_id, method = "Browser.close" }) .. "\0")
    end)
    pogo.receive(function(x) return type(x) == "table" and x[1] == self.tag and x[2] == "exit" end, 3000)
  end
  pcall(uv.kill, -self.pid, "sigkill") -- its group: the helpers it started too
  if not self.exited then
    pcall(uv.kill, self.pid, "sigkill")
    pogo.receive(function(x) return type(x) == "table" and x[1] == self.tag and x[2] == "exit" end, 2000)
  end
  for _, h in ipairs { self.to, self.from, self.errp } do
    if not h:is_closing() then h:close() end
  end
  pogo.sleep(20) -- let the loop finish the closes (luv 1.44 crashes at exit on handles closed but not processed)
  certs.remove(self.dir)
end

return M
