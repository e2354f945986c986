/*
 * crash.c: crash reasons, the exit reason of a process whose body raised.
 *
 * Contract
 * - A crash reason is a table {error = <the error value>, traceback = <string>}
 *   with a metatable (__name "pogo.crash") whose __tostring gives the error
 *   and the traceback, so a log line or an "EXIT" message shows both.
 * - The scheduler builds one when a process's coroutine fails
 *   (pogo_crash_push). Crossing to another node drops the metatable (the codec
 *   sends plain tables): the receiving side gives it back
 *   (pogo_crash_restore) to any table with a string `traceback`; so does
 *   core.crash_restore, for reasons that cross inside a message (pogo.registry
 *   replicates the exit reasons of name holders).
 */
#include "runtime.h"

static int crash_tostring(lua_State *L) {
  lua_getfield(L, 1, "error");
  const char *e = luaL_tolstring(L, -1, NULL);
  lua_getfield(L, 1, "traceback");
  const char *tb = lua_tostring(L, -1);
  if (tb) lua_pushfstring(L, "%s\n%s", e, tb);
  else lua_pushstring(L, e);
  return 1;
}

void pogo_crash_setup(pogo_node *N, lua_State *L) {
  lua_newtable(L);
  lua_pushcfunction(L, crash_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pushstring(L, "pogo.crash");
  lua_setfield(L, -2, "__name");
  N->ref_crash_mt = luaL_ref(L, LUA_REGISTRYINDEX);
}

void pogo_crash_push(pogo_node *N, lua_State *L, lua_State *co) {
  lua_createtable(L, 0, 2);
  lua_xmove(co, L, 1); /* error value */
  lua_setfield(L, -2, "error");
  luaL_traceback(L, co, NULL, 0);
  lua_setfield(L, -2, "traceback");
  pogo_node_push_ref(L, N->ref_crash_mt);
  lua_setmetatable(L, -2);
}

void pogo_crash_restore(pogo_node *N, lua_State *L, int idx) {
  idx = lua_absindex(L, idx);
  if (lua_type(L, idx) != LUA_TTABLE) return;
  lua_getfield(L, idx, "traceback");
  int is_crash = lua_type(L, -1) == LUA_TSTRING;
  lua_pop(L, 1);
  if (!is_crash) return;
  pogo_node_push_ref(L, N->ref_crash_mt);
  lua_setmetatable(L, idx);
}

/* crash_restore(v) -> v, a crash reason again if it was one before crossing */
static int l_crash_restore(lua_State *L) {
  luaL_checkany(L, 1);
  lua_settop(L, 1);
  pogo_crash_restore(POGO_NODE(L), L, 1);
  return 1;
}

void pogo_crash_register(lua_State *L) {
  static const luaL_Reg fns[] = {{"crash_restore", l_crash_restore}, {NULL, NULL}};
  pogo_node_setfuncs(L, fns);
}
