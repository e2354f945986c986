-- TLS, advertise and discovery as pogo.start options in this process (bad
-- ones raise with a message naming the option and the file, and leave the
-- node unstarted), then a TLS link between this node and a node process that
-- carries large and many messages. Outside spec/cluster/ so that make
-- valgrind and make asan check this process's TLS paths.
local pogo = require "pogo"
local cluster = require "support.cluster"
local certs = require "pogo.local_cluster.certs"
local cli = require "support.pogo_cli"

local R = "support.remote"

local dir, ca, good, other

setup(function()
  dir = certs.tmpdir()
  ca = certs.ca(dir, "ca")
  good = certs.node(ca, dir, "good")
  other = certs.node(ca, dir, "other")
end)

teardown(function()
  certs.remove(dir)
end)

local function start_error(opts)
  opts.cookie = "secret"
  local ok, err = pcall(pogo.start, opts)
  assert.is_false(ok, "pogo.start accepted bad options")
  assert.is_nil(pogo.dist_info().started)
  return tostring(err)
end

local function file(name, text)
  local path = dir .. "/" .. name
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
  return path
end

describe("pogo.start refuses", function()
  it("TLS files that are missing", function()
    local missing = dir .. "/missing.pem"
    assert.equal("pogo.start: tls.cert: cannot read " .. missing .. ": No such file or directory",
                 start_error { tls = { cert = missing, key = good.key, ca = ca.cert } })
    assert.equal("pogo.start: tls.key: cannot read " .. missing .. ": No such file or directory",
                 start_error { tls = { cert = good.cert, key = missing, ca = ca.cert } })
    assert.equal("pogo.start: tls.ca: cannot read " .. missing .. ": No such file or directory",
                 start_error { tls = { cert = good.cert, key = good.key, ca = missing } })
  end)

  it("a key that does not match the certificate", function()
    assert.equal("pogo.start: tls.key: " .. other.key .. " is not the private key of the certificate " .. good.cert,
                 start_error { tls = { cert = good.cert, key = other.key, ca = ca.cert } })
  end)

  it("files that are not PEM certificates or keys", function()
    local junk = file("junk.pem", "not a certificate\n")
    assert.truthy(start_error({ tls = { cert = junk, key = good.key, ca = ca.cert } })
      :find("pogo.start: tls.cert: " .. junk .. " holds no usable PEM certificate", 1, true))
    assert.truthy(start_error({ tls = { cert = good.cert, key = junk, ca = ca.cert } })
      :find("pogo.start: tls.key: " .. junk .. " holds no usable PEM private key", 1, true))
    assert.truthy(start_error({ tls = { cert = good.cert, key = good.key, ca = junk } })
      :find("pogo.start: tls.ca: " .. junk .. " holds no usable PEM certificate", 1, true))
  end)

  it("a key with a passphrase, without asking for it (a prompt would block the node's loop)", function()
    local enc = dir .. "/enc.key"
    assert.is_true(os.execute(string.format("openssl pkey -in '%s' -aes256 -passout pass:x -out '%s' 2>/dev/null",
                                            good.key, enc)))
    assert.equal("pogo.start: tls.key: " .. enc .. " is encrypted: a key with a passphrase is not supported "
      .. "(keep it unencrypted, readable by the node only: openssl pkey -in KEY -out KEY2)",
      start_error { tls = { cert = good.cert, key = enc, ca = ca.cert } })
  end)

  it("a certificate whose extendedKeyUsage lacks what a node needs, naming the file and the purpose", function()
    local server = certs.node(ca, dir, "server_only", { eku = "serverAuth" })
    local client = certs.node(ca, dir, "client_only", { eku = "clientAuth" })
    local email = certs.node(ca, dir, "email", { eku = "emailProtection" })
    local advice = " (a node is the TLS server when dialed and the client when dialing: give it "
                   .. "extendedKeyUsage = serverAuth, clientAuth)"
    assert.equal("pogo.start: tls.cert: " .. server.cert .. " cannot be used for dialing: its extendedKeyUsage "
                 .. "lacks clientAuth" .. advice, start_error { tls = server })
    assert.equal("pogo.start: tls.cert: " .. client.cert .. " cannot be used for accepting links: its "
                 .. "extendedKeyUsage lacks serverAuth" .. advice, start_error { tls = client })
    assert.equal("pogo.start: tls.cert: " .. email.cert .. " cannot be used for either end of a link: its "
                 .. "extendedKeyUsage lacks serverAuth; its extendedKeyUsage lacks clientAuth" .. advice,
                 start_error { tls = email })
  end)

  it("such a certificate in bin/pogo: one line, exit status 1, as any unusable TLS file", function()
    local client = certs.node(ca, dir, "client_only_cli", { eku = "clientAuth" })
    local code, out, err = cli.run { "--cookie", "x", "--tls-cert", client.cert, "--tls-key", client.key,
                                     "--tls-ca", ca.cert }
    assert.equal(1, code, err)
    assert.equal("", out)
    assert.equal("pogo: tls.cert: " .. client.cert .. " cannot be used for accepting links: its extendedKeyUsage "
                 .. "lacks serverAuth (a node is the TLS server when dialed and the client when dialing: give it "
                 .. "extendedKeyUsage = serverAuth, clientAuth)\n", err)
  end)

  it("incomplete or mistyped options, naming them", function()
    assert.truthy(start_error({ tls = { cert = good.cert, ca = ca.cert } })
      :find("opts.tls.key must be a file name, got nil", 1, true))
    assert.truthy(start_error({ tls = "yes" }):find("opts.tls must be a table", 1, true))
    assert.truthy(start_error({ advertise = 4000 }):find("opts.advertise must be", 1, true))
    assert.equal("pogo.start: advertise must be \"host:port\" or \"host\", got 'a b:1'",
                 start_error { advertise = "a b:1" })
    assert.truthy(start_error({ discovery = { interval_ms = 100 } }):find("opts.discovery.dns must be", 1, true))
    assert.truthy(start_error({ discovery = { dns = "x.test:1", interval_ms = 5 } })
      :find("opts.discovery.interval_ms must be an integer of 10 or more", 1, true))
    assert.equal("pogo.start: discovery.dns must be \"name:port\" or \"_service._tcp.name\", got 'nodes.test'",
                 start_error { discovery = { dns = "nodes.test" } })
    assert.equal("pogo.start: discovery.nameserver must be \"ip:port\", got 'not an address'",
                 start_error { discovery = { dns = "nodes.test:4000", nameserver = "not an address" } })
  end)
end)

describe("a TLS link", function()
  local c, n

  setup(function()
    c = cluster.new { tls = good, timeout_ms = 5000, heartbeat_ms = 500 }
    c:start_self()
    n = c:start_node { name = "peer" }
    c:connect(n)
  end)

  teardown(function()
    c:teardown()
    pogo.stop()
  end)

  it("takes a certificate without extendedKeyUsage at either end (it serves any purpose)", function()
    local plain = certs.node(ca, dir, "no_eku", { eku = false })
    local m = c:start_node { name = "no_eku", tls = plain }
    c:connect(m) -- this node dials: m's certificate verified as a server's
    assert.is_true(c:sees(m, pogo.node()))
    c:stop(m)
    local m2 = c:start_node { name = "no_eku2", tls = plain, seeds = { pogo.dist_info().listen } }
    -- m2 dials this node: its certificate verified as a client's
    cluster.wait_until(function() return c:sees(m2, pogo.node()) end, 5000, "no_eku2 to dial this node")
    c:stop(m2)
  end)

  it("is up with TLS on both sides", function()
    local info = pogo.dist_info()
    assert.is_true(info.tls)
    assert.is_true(info.links[1].tls)
    assert.is_true(c:call(n, R, "info").tls)
  end)

  it("carries large and many messages, in order", function()
    local echo = c:call(n, R, "echo")
    local big = string.rep("0123456789abcdef", 256 * 1024) -- 4 MiB: many records, partial writes
    pogo.send(echo, { pogo.self(), big })
    assert.equal(big, pogo.receive(10000))
    for i = 1, 2000 do pogo.send(echo, { pogo.self(), i }) end
    for i = 1, 2000 do assert.equal(i, pogo.receive(10000)) end
  end)

  it("ends cleanly with a stop: the peer sees shutdown", function()
    pogo.monitor_nodes(true)
    c:stop(n)
    local m = cluster.expect(function(x) return x[1] == "nodedown" and x[2] == n.name end, 10000, "nodedown")
    assert.equal("shutdown", m[3])
    pogo.monitor_nodes(false)
  end)
end)
