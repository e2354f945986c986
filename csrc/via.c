/*
 * via.c: names that a module resolves, as Erlang's {via, Module, Name}.
 *
 * Contract
 * - A via name is a table of three elements {"via", module, name}: the string
 *   "via", a `require` name, and a name that module understands (a value
 *   other than nil). {name, node} has two elements, so the two never mix.
 * - It names what require(module).whereis(name) returns: a pid, or nil when
 *   nothing holds that name. `pogo.registry` is such a module; any table with
 *   a `whereis` function that neither blocks nor yields will do (it runs
 *   inside send).
 * - send (mailbox.c) sends to that pid and raises noproc when there is none,
 *   as for a local registered name; core.via_whereis gives the pid to the Lua
 *   side (pogo.call, pogo.cast, pogo.server's `name` option), so the name is
 *   resolved here only.
 * - A module that cannot be loaded, or has no whereis, or a whereis that
 *   returns something other than a pid or nil raises an error naming it.
 */
#include <string.h>

#include "runtime.h"

int pogo_via_is(lua_State *L, int idx) {
  if (lua_type(L, idx) != LUA_TTABLE) return 0;
  size_t len = 0;
  int via = lua_rawgeti(L, idx, 1) == LUA_TSTRING;
  const char *tag = via ? lua_tolstring(L, -1, &len) : NULL;
  via = via && len == 3 && memcmp(tag, "via", 3) == 0;
  lua_pop(L, 1);
  if (!via) return 0;
  via = lua_rawgeti(L, idx, 3) != LUA_TNIL;
  lua_pop(L, 1);
  return via;
}

void pogo_via_whereis(lua_State *L, int idx) {
  idx = lua_absindex(L, idx);
  if (lua_rawgeti(L, idx, 2) != LUA_TSTRING)
    luaL_error(L, "{\"via\", module, name}: module must be a string, got %s", luaL_typename(L, -1));
  const char *mod = lua_tostring(L, -1);
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  if (lua_getfield(L, -1, mod) != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_getglobal(L, "require");
    lua_pushvalue(L, -3);
    lua_call(L, 1, 1);
    if (lua_type(L, -1) != LUA_TTABLE) luaL_error(L, "{\"via\", \"%s\", name}: the module is not a table", mod);
  }
  if (lua_getfield(L, -1, "whereis") != LUA_TFUNCTION)
    luaL_error(L, "{\"via\", \"%s\", name}: the module has no whereis function", mod);
  lua_rawgeti(L, idx, 3);
  lua_call(L, 1, 1);
  if (!lua_isnil(L, -1) && !pogo_ident_is_pid(L, -1, NULL))
    luaL_error(L, "{\"via\", \"%s\", name}: whereis returned a %s, not a pid or nil", mod, luaL_typename(L, -1));
  lua_replace(L, -4); /* module name, loaded, module, pid -> pid, loaded, module */
  lua_pop(L, 2);
}

/* via_whereis({"via", module, name}) -> pid | nil */
static int l_via_whereis(lua_State *L) {
  if (!pogo_via_is(L, 1)) return luaL_argerror(L, 1, "{\"via\", module, name} expected");
  pogo_via_whereis(L, 1);
  return 1;
}

/* is_via(v) -> whether v is {"via", module, name} */
static int l_is_via(lua_State *L) {
  lua_pushboolean(L, pogo_via_is(L, 1));
  return 1;
}

void pogo_via_register(lua_State *L) {
  static const luaL_Reg fns[] = {{"via_whereis", l_via_whereis}, {"is_via", l_is_via}, {NULL, NULL}};
  pogo_node_setfuncs(L, fns);
}
