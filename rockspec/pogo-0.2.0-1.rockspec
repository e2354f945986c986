rockspec_format = "3.0"
package = "pogo"
version = "0.2.0-1"
-- The release tarball. `make pack` builds it from the checkout's HEAD (git
-- archive) and packs pogo-0.2.0-1.src.rock; luarocks fetches into a temporary
-- directory, so make pack hands it a copy of this rockspec with the tarball's
-- absolute path. From a checkout: `make rock` (luarocks make, no fetch).
-- The version is pogo._VERSION (lua/pogo/init.lua; spec/version_spec.lua checks it).
source = {
  url = "pogo-0.2.0.tar.gz",
  dir = "pogo-0.2.0",
}
description = {
  summary = "A distributed supervisor for Lua 5.4: processes, links, monitors, pg, a hash ring and Pogo's dynamic supervisor",
  detailed = [[
pogo starts a child once somewhere in a cluster of Lua nodes, restarts it when it
crashes, moves it when nodes come and go, and shows every child from every node.
Its C core (libuv via luv, msgpack-c, xxHash, OpenSSL, c-ares) provides processes with
mailboxes, links, monitors, node links, replicated process groups and a
consistent hash ring.
]],
  license = "MIT",
  -- a placeholder (.invalid never resolves): the project has no public home yet
  homepage = "https://pogo.invalid/",
  labels = { "distributed", "supervisor", "actors", "erlang", "libuv" },
}
-- luv comes from the system (Debian's lua-luv / lua-luv-dev): its C API (luv_loop)
-- must be the same library that `require "luv"` loads, so it is not a rock dependency.
-- bin/pogo parses its arguments with argparse, from Debian's lua-argparse (the
-- argparse rock works too); it is not listed so that an offline install that has
-- Debian's package does not look for the rock. The same goes for the web page's
-- JSON (lua-cjson: the lua-cjson rock) and the consoles' pretty-printer
-- (lua-penlight: the penlight rock).
dependencies = {
  "lua >= 5.4, < 5.5",
}
external_dependencies = {
  LIBUV = { header = "uv.h" },
  MSGPACK = { header = "msgpack.h" },
  XXHASH = { header = "xxhash.h" },
  OPENSSL = { header = "openssl/ssl.h" },
  CARES = { header = "ares.h" },
  HTTP_PARSER = { header = "http_parser.h" },
}
build = {
  type = "cmake",
  variables = {
    CMAKE_BUILD_TYPE = "RelWithDebInfo",
    CMAKE_INSTALL_PREFIX = "$(PREFIX)",
    LUA_INCDIR = "$(LUA_INCDIR)",
    INSTALL_LUADIR = "$(LUADIR)",
    INSTALL_LIBDIR = "$(LIBDIR)",
    INSTALL_BINDIR = "$(BINDIR)",
  },
}
