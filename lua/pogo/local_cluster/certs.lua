--- Throwaway TLS certificates for local clusters (specs, benchmarks), made
-- with the `openssl` command-line tool, as the README's "Across machines"
-- section makes real ones.
--
--   local certs = require "pogo.local_cluster.certs"
--   local dir = certs.tmpdir()
--   local ca = certs.ca(dir, "ca")                  -- {cert =, key =}
--   local tls = certs.node(ca, dir, "n1")           -- {cert =, key =, ca =}: pogo.start's tls
--   local old = certs.node(ca, dir, "old", { expired = true })
--   certs.remove(dir)
--
-- Keys are EC P-256 (fast to make). Node certificates carry
-- `subjectAltName = IP:127.0.0.1, DNS:localhost` and both TLS usages
-- (serverAuth, clientAuth: a node is a client when it dials, a server when
-- dialed; `eku` makes others, for the specs of pogo.start's check). An
-- expired certificate is signed with `openssl ca` and explicit dates in
-- the past (`openssl x509 -days` cannot go back in time).
-- Failures raise with openssl's own message.
-- @module pogo.local_cluster.certs
local M = {}

local function q(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

local function slurp(path)
  local f = io.open(path)
  if not f then return "" end
  local s = f:read("a")
  f:close()
  return s
end

local function spew(path, s)
  local f = assert(io.open(path, "w"))
  f:write(s)
  f:close()
end

-- Run a shell command; raise with its output when it fails.
local function run(dir, cmd)
  local log = dir .. "/openssl.log"
  local ok = os.execute(cmd .. " >" .. q(log) .. " 2>&1")
  if not ok then error("certs: `" .. cmd .. "` failed: " .. slurp(log), 3) end
end

--- A new private temporary directory (`mktemp -d`).
-- @treturn string its path
function M.tmpdir()
  local p = io.popen("mktemp -d " .. q((os.getenv("TMPDIR") or "/tmp") .. "/pogo-test.XXXXXX"))
  local dir = p:read("l")
  p:close()
  if not dir or dir == "" then error("certs: mktemp -d failed", 2) end
  return dir
end

--- Remove a directory made by `tmpdir` and everything in it (any other
-- path is left alone).
-- @tparam string dir from `tmpdir`
function M.remove(dir)
  if dir and dir:match("/pogo%-test%.") then os.execute("rm -rf " .. q(dir)) end
end

local NEWKEY = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"

--- A self-signed CA valid for ten years.
-- @tparam string dir where its files go
-- @tparam string name file stem and common name
-- @treturn table `{cert =, key =}` (file names)
function M.ca(dir, name)
  local ca = { cert = dir .. "/" .. name .. ".pem", key = dir .. "/" .. name .. ".key", dir = dir, name = name }
  run(dir, string.format("openssl req -x509 %s -keyout %s -out %s -days 3650 -subj %s", NEWKEY, q(ca.key),
                         q(ca.cert), q("/CN=pogo test CA " .. name)))
  return ca
end

--- An intermediate CA signed by `ca` (a CA of its own for `node`).
-- @tparam table ca from `ca`
-- @tparam string dir where its files go
-- @tparam string name file stem and common name
-- @treturn table `{cert =, key =}` (file names)
function M.intermediate(ca, dir, name)
  local i = { cert = dir .. "/" .. name .. ".pem", key = dir .. "/" .. name .. ".key", dir = dir, name = name }
  local ext = dir .. "/" .. name .. ".ext"
  spew(ext, "basicConstraints = critical, CA:TRUE\nkeyUsage = critical, keyCertSign, cRLSign\n")
  run(dir, string.format("openssl req %s -keyout %s -out %s -subj %s", NEWKEY, q(i.key),
                         q(dir .. "/" .. name .. ".csr"), q("/CN=pogo test intermediate CA " .. name)))
  run(dir, string.format("openssl x509 -req -in %s -CA %s -CAkey %s -CAcreateserial -out %s -days 3650 "
                         .. "-extfile %s", q(dir .. "/" .. name .. ".csr"), q(ca.cert), q(ca.key), q(i.cert), q(ext)))
  return i
end

--- A node certificate signed by `ca`.
-- @tparam table ca from `ca`
-- @tparam string dir where its files go
-- @tparam string name file stem and common name
-- @tparam[opt] table opts `expired = true`: valid only in January 2020;
--  `san` (default `"IP:127.0.0.1,DNS:localhost"`); `eku` (default
--  `"serverAuth, clientAuth"`; false: no extendedKeyUsage at all)
-- @treturn table `{cert =, key =, ca =}`, the `tls` option of `pogo.start`
function M.node(ca, dir, name, opts)
  opts = opts or {}
  local base = dir .. "/" .. name
  local ext = base .. ".ext"
  local eku = opts.eku
  if eku == nil then eku = "serverAuth, clientAuth" end
  spew(ext, "subjectAltName = " .. (opts.san or "IP:127.0.0.1,DNS:localhost")
            .. (eku and "\nextendedKeyUsage = " .. eku or "") .. "\nkeyUsage = digitalSignature\n")
  run(dir, string.format("openssl req %s -keyout %s -out %s -subj %s", NEWKEY, q(base .. ".key"),
                         q(base .. ".csr"), q("/CN=" .. name)))
  if opts.expired then
    local db = dir .. "/" .. ca.name .. ".db"
    os.execute("mkdir -p " .. q(db))
    if slurp(db .. "/serial") == "" then
      spew(db .. "/serial", "1000\n")
      spew(db .. "/index.txt", "")
    end
    local cnf = db .. "/ca.cnf"
    spew(cnf, table.concat({ "[ca]", "default_ca = d", "[d]", "database = " .. db .. "/index.txt",
                             "serial = " .. db .. "/serial", "new_certs_dir = " .. db, "default_md = sha256",
                             "policy = p", "unique_subject = no", "[p]", "commonName = supplied", "" }, "\n"))
    run(dir, string.format("openssl ca -batch -notext -config %s -cert %s -keyfile %s -in %s -out %s "
                           .. "-startdate 20200101000000Z -enddate 20200102000000Z -extfile %s",
                           q(cnf), q(ca.cert), q(ca.key), q(base .. ".csr"), q(base .. ".pem"), q(ext)))
  else
    run(dir, string.format("openssl x509 -req -in %s -CA %s -CAkey %s -CAcreateserial -out %s -days 365 "
                           .. "-extfile %s", q(base .. ".csr"), q(ca.cert), q(ca.key), q(base .. ".pem"), q(ext)))
  end
  return { cert = base .. ".pem", key = base .. ".key", ca = ca.cert }
end

return M
