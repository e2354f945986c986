rockspec_format = "3.0"
package = "pogo"
version = "scm-1"
source = {
  url = "git+file:///dev/null", -- built from a checkout: luarocks make rockspec/pogo-scm-1.rockspec
}
description = {
  summary = "A distributed supervisor for Lua 5.4: processes, links, monitors, pg, a hash ring and Pogo's dynamic supervisor",
  detailed = [[
pogo starts a child once somewhere in a cluster of Lua nodes, restarts it when it
crashes, moves it when nodes come and go, and shows every child from every node.
Its C core (libuv via luv, msgpack-c, xxHash, OpenSSL) provides processes with
mailboxes, links, monitors, node links, replicated process groups and a
consistent hash ring.
]],
  license = "MIT",
}
-- luv comes from the system (Debian's lua-luv / lua-luv-dev): its C API (luv_loop)
-- must be the same library that `require "luv"` loads, so it is not a rock dependency.
dependencies = {
  "lua >= 5.4, < 5.5",
}
external_dependencies = {
  LIBUV = { header = "uv.h" },
  MSGPACK = { header = "msgpack.h" },
  XXHASH = { header = "xxhash.h" },
  OPENSSL = { header = "openssl/hmac.h" },
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
