-- Specs for pogo's HTTP server (csrc/http.c, csrc/http_request.c, lua/pogo/http.lua)
-- with real TCP clients on 127.0.0.1: requests reach a handler process,
-- keep-alive and pipelining, streams, the answers to malformed and
-- oversize requests, and where it listens.
local pogo = require "pogo"
local uv = require "luv"
local http = require "pogo.http"
local client = require "support.http_client"

describe("pogo.http", function()
  local srv
  local seen = {}

  local function handler(req, res)
    seen[#seen + 1] = req
    if req.path == "/hello" then
      return res:send(200, { ["Content-Type"] = "text/plain" }, "hello " .. (req.query.name or "?") .. "\n")
    elseif req.path == "/echo" then
      return res:send(200, nil, req.method .. " " .. (req.body or "") .. " " .. (req.headers["x-a"] or ""))
    elseif req.path == "/slow" then
      pogo.sleep(tonumber(req.query.ms) or 50)
      return res:send(200, nil, "slow " .. req.query.n)
    elseif req.path == "/raise" then
      error("handler exploded")
    elseif req.path == "/stream" then
      res:stream(200, { ["Content-Type"] = "text/event-stream" })
      local n = 0
      while res:write("data: " .. n .. "\n\n") do
        n = n + 1
        pogo.sleep(10)
        if n > 1000 then break end
      end
      seen.stream_writes = n
      pogo.send("http_spec", { "stream ended", n })
      return
    end
    return res:send(404, nil, "not found\n")
  end

  setup(function()
    pogo.register("http_spec", pogo.self())
    local err
    srv, err = http.serve("127.0.0.1:0", handler)
    assert(srv, err)
  end)

  teardown(function()
    if srv then srv:close() end
    pogo.sleep(20)
  end)

  it("hands a request to a handler process: method, path, query, headers, body", function()
    local status, headers, body = client.get(srv.port, "/hello?name=a%20b&x=1")
    assert.are.equal(200, status)
    assert.are.equal("text/plain", headers["content-type"])
    assert.are.equal("hello a b\n", body)
    local req = seen[#seen]
    assert.are.equal("GET", req.method)
    assert.are.equal("/hello", req.path)
    assert.are.same({ name = "a b", x = "1" }, req.query)
    assert.are.equal("test", req.headers.host)
    local data = client.raw(srv.port, "POST /echo HTTP/1.1\r\nHost: x\r\nX-A: 1\r\nx-a: 2\r\nContent-Length: 5\r\n"
                                      .. "Connection: close\r\n\r\nabcde")
    local _, _, echoed = client.parse(data)
    assert.are.equal("POST abcde 1, 2", echoed)
  end)

  it("keeps a connection alive and answers pipelined requests in order", function()
    local c = assert(client.connect(srv.port))
    -- two slow requests sent at once: the second is read only once the first is answered
    c.send("GET /slow?n=1&ms=60 HTTP/1.1\r\nHost: x\r\n\r\nGET /slow?n=2&ms=1 HTTP/1.1\r\nHost: x\r\n\r\n")
    local got = ""
    local deadline = uv.now() + 5000
    while not got:find("slow 2") and uv.now() < deadline do
      local b = c.read(1000)
      if b then got = got .. b end
      uv.update_time()
    end
    c.close()
    local s1, _, b1, rest = client.parse(got)
    local s2, _, b2 = client.parse(rest)
    assert.are.same({ 200, "slow 1", 200, "slow 2" }, { s1, b1, s2, b2 })
  end)

  it("answers HEAD without a body, 404, and 500 when the handler raises", function()
    local data = client.raw(srv.port, "HEAD /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert.matches("^HTTP/1.1 200 OK\r\n", data)
    assert.matches("Content%-Length: 8\r\n", data)
    assert.matches("\r\n\r\n$", data)
    assert.are.equal(404, (client.get(srv.port, "/nothing")))
    assert.are.equal(500, (client.get(srv.port, "/raise")))
  end)

  it("answers malformed and oversize requests itself and closes the connection", function()
    assert.matches("^HTTP/1.1 400 ", client.raw(srv.port, "NOT HTTP AT ALL\r\n\r\n"))
    assert.matches("^HTTP/1.1 400 ", client.raw(srv.port, "GET / HTTP/1.1\r\nHost x\r\n\r\n"))
    local big = "GET / HTTP/1.1\r\nHost: x\r\nX-Big: " .. string.rep("a", 20000) .. "\r\n\r\n"
    assert.matches("^HTTP/1.1 431 ", client.raw(srv.port, big))
    local many = { "GET / HTTP/1.1\r\n" }
    for i = 1, 70 do many[#many + 1] = "X-" .. i .. ": v\r\n" end
    many[#many + 1] = "\r\n"
    assert.matches("^HTTP/1.1 431 ", client.raw(srv.port, table.concat(many)))
    assert.matches("^HTTP/1.1 413 ", client.raw(srv.port, "POST /echo HTTP/1.1\r\nContent-Length: 100000\r\n\r\n"))
    -- a chunked body past the limit
    local chunk = string.format("%x\r\n%s\r\n", 40000, string.rep("b", 40000))
    assert.matches("^HTTP/1.1 413 ", client.raw(srv.port, "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                                                          .. chunk .. chunk))
    assert.matches("^HTTP/1.1 400 ", client.raw(srv.port, "GET / HTTP/1.1\r\nUpgrade: websocket\r\n"
                                                          .. "Connection: Upgrade\r\n\r\n"))
    -- the server is still there
    assert.are.equal(200, (client.get(srv.port, "/hello")))
  end)

  it("streams until the client leaves, and the handler sees it", function()
    local s = client.stream(srv.port, "/stream")
    assert.are.equal("0", s:next(2000))
    assert.are.equal("1", s:next(2000))
    s:close()
    local m = pogo.receive(function(x) return type(x) == "table" and x[1] == "stream ended" end, 5000)
    assert.is_not_nil(m, "the stream's handler never saw the client leave")
    assert.is_true(m[2] < 1000)
  end)

  it("frees a connection whose client leaves in the middle of a request", function()
      local c = assert(client.connect(srv.port))
      c.send("GET /hel")
      pogo.sleep(50)
      c.close()
      local c2 = assert(client.connect(srv.port))
      c2.send("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
      local b = c2.read(2000)
      assert.matches("^HTTP/1.1 200 ", b)
      c2.close()
      local deadline = uv.now() + 2000
      while srv.srv:connections() > 0 and uv.now() < deadline do
        pogo.sleep(10)
        uv.update_time()
      end
      assert.are.equal(0, srv.srv:connections())
  end)

  it("listens only where told", function()
    -- 127.0.0.2 is this machine too, but the server listens on 127.0.0.1 only
    local c, err = client.connect(srv.port, "127.0.0.2")
    if c then c.close() end
    assert.is_nil(c)
    assert.matches("ECONNREFUSED", tostring(err))
    local other, why = http.serve("127.0.0.1:" .. srv.port, handler)
    assert.is_nil(other)
    assert.matches("address already in use", why)
    assert.is_nil((http.serve("localhost:80", handler)))
    assert.matches("not an IP address", select(2, http.serve("localhost:80", handler)))
    assert.matches('"host:port" expected', select(2, http.serve("127.0.0.1", handler)))
  end)

  it("close stops listening and closes the connections", function()
    local s2 = assert(http.serve("127.0.0.1:0", handler))
    local c = assert(client.connect(s2.port))
    c.send("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
    assert.matches("^HTTP/1.1 200 ", c.read(2000))
    s2:close()
    assert.is_nil(c.read(2000)) -- closed by the server
    c.close()
    assert.is_nil((client.connect(s2.port)))
  end)
end)
