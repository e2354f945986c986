--- A small HTTP/1.1 server for the node's own pages (`pogo.dashboard`):
-- requests are read and parsed in C (`csrc/http.c`, Node's http_parser),
-- and each one is handled by a process of its own, so a handler may block,
-- call other nodes and wait.
--
--     local http = require "pogo.http"
--     local srv = assert(http.serve("127.0.0.1:8080", function(req, res)
--       if req.path == "/" then return res:send(200, {["content-type"] = "text/plain"}, "hello\n") end
--       res:send(404, nil, "not found\n")
--     end))
--     srv:close()
--
-- A request is `{method =, target =, path =, query = {name = value},
-- headers = {lowercase name = value}, body =, keep_alive =}`. A handler
-- answers with `res:send(status, headers, body)` (the length and the
-- connection's fate are set here; a HEAD request gets no body), or streams:
-- `res:stream(status, headers)`, then `res:write(bytes)` until it returns
-- false (the client left), and `res:finish()`. A handler that raises, or
-- returns without answering, answers 500. The limits on requests, the
-- timeouts and the answers to malformed requests are the C server's
-- (csrc/http.c).
-- @module pogo.http
local pogo = require "pogo"

local core = pogo.core
local log = require("pogo.log").with { module = "pogo.http" }

local M = {}

local REASONS = {
  [200] = "OK", [204] = "No Content", [304] = "Not Modified", [400] = "Bad Request", [404] = "Not Found",
  [405] = "Method Not Allowed", [500] = "Internal Server Error", [503] = "Service Unavailable",
}

--- Split "host:port" ("[::1]:port" for IPv6) into host and port.
-- @tparam string addr
-- @treturn[1] string host
-- @treturn[1] integer port
-- @treturn[2] nil
-- @treturn[2] string why
function M.split_addr(addr)
  if type(addr) ~= "string" then return nil, "an address \"host:port\" expected" end
  local host, port = addr:match("^%[([^%]]+)%]:(%d+)$")
  if not host then host, port = addr:match("^([^:]+):(%d+)$") end
  port = math.tointeger(tonumber(port))
  if not host or not port or port > 65535 then
    return nil, "\"host:port\" expected, got '" .. addr .. "'"
  end
  return host, port
end

local function unescape(s)
  s = s:gsub("+", " ")
  return (s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

--- The query of a target as a table (the last value of a repeated name wins).
-- @tparam ?string query the part after "?"
-- @treturn table
function M.parse_query(query)
  local q = {}
  for pair in (query or ""):gmatch("[^&]+") do
    local k, v = pair:match("^([^=]*)=?(.*)$")
    if k and k ~= "" then q[unescape(k)] = unescape(v) end
  end
  return q
end

-- ---- responses ----

local Response = {}
Response.__index = Response

local function head(status, headers, extra)
  local lines = { string.format("HTTP/1.1 %d %s\r\n", status, REASONS[status] or "Status") }
  for k, v in pairs(headers or {}) do lines[#lines + 1] = k .. ": " .. tostring(v) .. "\r\n" end
  for _, l in ipairs(extra) do lines[#lines + 1] = l end
  lines[#lines + 1] = "\r\n"
  return table.concat(lines)
end

--- Answer with a whole body.
-- @tparam integer status
-- @tparam ?table headers name -> value (content-length and connection are set here)
-- @tparam ?string body
-- @treturn boolean whether it could be written (false: the client left)
function Response:send(status, headers, body)
  if self.started then error("pogo.http: the request was answered already", 2) end
  self.started = true
  body = body or ""
  local keep = self.req.keep_alive
  local bytes = head(status, headers, { "Content-Length: " .. #body .. "\r\n",
                                        keep and "" or "Connection: close\r\n" })
  if self.req.method ~= "HEAD" then bytes = bytes .. body end
  self.done = true
  return self.srv:write(self.id, bytes, keep and "keep" or "close")
end

--- Start a streamed answer (an event stream): no length, the connection
-- closes at its end. A HEAD request gets the head only, and the connection
-- closes at once: false is returned, as for a client gone, so the handler
-- streams nothing.
-- @tparam integer status
-- @tparam ?table headers
-- @treturn boolean
function Response:stream(status, headers)
  if self.started then error("pogo.http: the request was answered already", 2) end
  self.started = true
  if self.req.method == "HEAD" then
    self.done = true
    self.srv:write(self.id, head(status, headers, { "Connection: close\r\n" }), "close")
    return false
  end
  return self.srv:write(self.id, head(status, headers, { "Connection: close\r\n" }))
end

--- Write more of a streamed answer.
-- @tparam string bytes
-- @treturn boolean false once the client is gone
function Response:write(bytes)
  return self.srv:write(self.id, bytes)
end

--- End a streamed answer (the connection closes).
function Response:finish()
  if self.done then return end
  self.done = true
  self.srv:write(self.id, "", "close")
end

-- ---- the server ----

local function handle(srv, handler, m)
  local target = m[4]
  local path, query = target:match("^([^?#]*)%??([^#]*)")
  local req = { method = m[3], target = target, path = path ~= "" and path or "/", query = M.parse_query(query),
                headers = m[5], body = m[6], keep_alive = m[7] }
  local res = setmetatable({ srv = srv, id = m[2], req = req }, Response)
  local ok, err = xpcall(handler, debug.traceback, req, res)
  if not ok then
    log.error("%s %s failed: %s", req.method, target, tostring(err))
    if not res.started then
      res:send(500, { ["Content-Type"] = "text/plain; charset=utf-8" }, "internal error\n")
    end
  elseif not res.started then
    res:send(500, { ["Content-Type"] = "text/plain; charset=utf-8" }, "no answer\n")
  elseif not res.done then
    res:finish()
  end
end

-- The server process: a process per request.
local function serve_loop(handler)
  local srv = pogo.receive(function(m) return type(m) == "table" and m[1] == "$http_server" end)[2]
  while true do
    local m = pogo.receive()
    if type(m) == "table" and m[1] == "$http" then
      pogo.spawn(handle, srv, handler, m)
    elseif m == "$http_stop" then
      srv:close()
      return
    end
  end
end

local Server = {}
Server.__index = Server

--- Stop listening and close every connection.
function Server:close()
  if self.closed then return end
  self.closed = true
  self.srv:close()
  if self.unhook then self.unhook() end
  pogo.send(self.pid, "$http_stop")
end

--- Serve `handler(req, res)` on `addr` ("host:port"; port 0 = any free
-- port). Listens only there. The server closes with `pogo.stop()`.
-- @tparam string addr
-- @tparam function handler
-- @return[1] the server: `{port =, addr =, close = fn}`
-- @return[2] nil
-- @return[2] string why (a bad address, the port is taken)
function M.serve(addr, handler)
  local host, port = M.split_addr(addr)
  if not host then return nil, port end
  if type(handler) ~= "function" then error("pogo.http.serve: handler must be a function", 2) end
  local pid = pogo.spawn(serve_loop, handler)
  local srv, real = core.http_listen(host, port, pid)
  if not srv then
    pogo.exit(pid, "kill")
    return nil, real
  end
  pogo.send(pid, { "$http_server", srv })
  local s = setmetatable({ srv = srv, pid = pid, port = real,
                           addr = (host:find(":") and "[" .. host .. "]" or host) .. ":" .. real }, Server)
  s.unhook = pogo.on_stop(function() s:close() end)
  return s
end

return M
