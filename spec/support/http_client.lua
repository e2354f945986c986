--- A plain HTTP/1.1 client on luv for the specs of pogo's web server (so that
-- they send exactly the bytes they mean, malformed ones included). Every
-- wait is bounded; the calls block the calling process (they receive).
--
--   local client = require "support.http_client"
--   local status, headers, body = client.get(port, "/api/cluster")
--   local bytes = client.raw(port, "GET / HTTP/1.0\r\n\r\n")   -- all it answers, until it closes
--   local s = client.stream(port, "/api/stream")               -- server-sent events
--   local data = s:next(2000); s:close()
local pogo = require "pogo"
local uv = require "luv"

local M = {}

--- A connection to 127.0.0.1:port (or `host`): {send = fn(bytes), close =
-- fn(), read = fn(timeout_ms) -> bytes | nil (closed) | false (timeout)}.
function M.connect(port, host)
  local me, tag = pogo.self(), {}
  local tcp = uv.new_tcp()
  local conn = { tcp = tcp, buf = "", eof = false }
  tcp:connect(host or "127.0.0.1", port, function(err)
    pogo.send(me, { tag, "connected", err })
  end)
  local m = pogo.receive(function(x) return type(x) == "table" and x[1] == tag end, 5000)
  if not m or m[3] then
    tcp:close()
    return nil, m and m[3] or "connect timeout"
  end
  tcp:read_start(function(err, data)
    pogo.send(me, { tag, "data", data, err })
  end)
  function conn.send(bytes) tcp:write(bytes) end
  function conn.close()
    if not tcp:is_closing() then tcp:close() end
  end
  -- Bytes that arrived (waiting up to timeout_ms for some): string; nil at EOF; false on timeout.
  function conn.read(timeout_ms)
    if conn.buf ~= "" then
      local b = conn.buf
      conn.buf = ""
      return b
    end
    if conn.eof then return nil end
    local x = pogo.receive(function(y) return type(y) == "table" and y[1] == tag and y[2] == "data" end,
                           timeout_ms or 5000)
    if not x then return false end
    if not x[3] then
      conn.eof = true
      return nil
    end
    return x[3]
  end
  return conn
end

--- Send `bytes` and read until the server closes (at most timeout_ms).
function M.raw(port, bytes, timeout_ms, host)
  local c = assert(M.connect(port, host))
  c.send(bytes)
  local out = {}
  local deadline = uv.now() + (timeout_ms or 5000)
  while true do
    local b = c.read(math.max(1, deadline - uv.now()))
    if b == nil then break end
    if b == false then
      c.close()
      error("the server did not close within " .. (timeout_ms or 5000) .. " ms; got: " .. table.concat(out))
    end
    out[#out + 1] = b
    uv.update_time()
  end
  c.close()
  return table.concat(out)
end

--- Parse one response from `data` (a Content-Length or a close-delimited body).
-- @return status, headers (lower case names), body, the bytes after it
function M.parse(data)
  local head, rest = data:match("^(.-)\r\n\r\n(.*)$")
  if not head then return nil end
  local status = tonumber(head:match("^HTTP/1%.%d (%d%d%d)"))
  local headers = {}
  for k, v in head:gmatch("\r\n([^:\r\n]+):%s*([^\r\n]*)") do headers[k:lower()] = v end
  local len = tonumber(headers["content-length"])
  if len then return status, headers, rest:sub(1, len), rest:sub(len + 1) end
  return status, headers, rest, ""
end

--- GET (or `method`) `path`, with the connection closed after it.
-- @return status, headers, body
function M.get(port, path, method, host)
  local data = M.raw(port, (method or "GET") .. " " .. path .. " HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n",
                     10000, host)
  return M.parse(data)
end

--- Open an event stream; `s:next(timeout_ms)` gives the data of the next event.
function M.stream(port, path)
  local c = assert(M.connect(port))
  c.send("GET " .. path .. " HTTP/1.1\r\nHost: test\r\nAccept: text/event-stream\r\n\r\n")
  local s = { c = c, buf = "", head = nil }
  function s:next(timeout_ms)
    local deadline = uv.now() + (timeout_ms or 5000)
    while true do
      if not self.head then
        local h, rest = self.buf:match("^(.-\r\n)\r\n(.*)$")
        if h then self.head, self.buf = h, rest end
      end
      if self.head then
        local ev, rest = self.buf:match("^(.-)\n\n(.*)$")
        if ev then
          self.buf = rest
          local data = {}
          for line in (ev .. "\n"):gmatch("([^\n]*)\n") do
            local d = line:match("^data: ?(.*)$")
            if d then data[#data + 1] = d end
          end
          if #data > 0 then return table.concat(data, "\n") end
        end
      end
      uv.update_time()
      local left = deadline - uv.now()
      if left <= 0 then return nil, "timeout" end
      local b = self.c.read(left)
      if b == nil then return nil, "closed" end
      if b then self.buf = self.buf .. b end
    end
  end
  function s:close() self.c.close() end
  return s
end

return M
