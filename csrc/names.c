/*
 * names.c: registered names of local processes.
 *
 * Contract
 * - A name is a non-empty string naming at most one live local process, and a
 *   process has at most one name (as in Erlang). register raises on conflicts;
 *   a name is released when its process exits.
 * - pogo_names_whereis serves the transport: a peer's message or monitor to a
 *   name finds its process here.
 */
#include "runtime.h"

void pogo_names_release(pogo_node *N, lua_State *L, pogo_proc *p) {
  if (!(p->flags & PF_NAMED)) return;
  p->flags &= (uint16_t)~PF_NAMED;
  pogo_node_push_ref(L, N->ref_slotname);
  lua_rawgeti(L, -1, p->slot);
  pogo_node_push_ref(L, N->ref_names);
  lua_pushvalue(L, -2);
  lua_pushnil(L);
  lua_rawset(L, -3);
  lua_pop(L, 2);
  lua_pushnil(L);
  lua_rawseti(L, -2, p->slot);
  lua_pop(L, 1);
}

int pogo_names_whereis(pogo_node *N, lua_State *L, const char *name, size_t len, pogo_id *out) {
  pogo_node_push_ref(L, N->ref_names);
  lua_pushlstring(L, name, len);
  lua_rawget(L, -2);
  int found = pogo_ident_is_pid(L, -1, out) && pogo_proc_get(N, out) != NULL;
  lua_pop(L, 2);
  return found;
}

/* register(name, pid) -> true */
static int l_register(lua_State *L) {
  pogo_node *N = POGO_NODE(L);
  size_t len;
  if (lua_type(L, 1) != LUA_TSTRING) /* (not a number made a string); named as pogo's, not Lua's search */
    return luaL_error(L, "bad argument #1 to 'pogo.register' (string expected, got %s)", luaL_typename(L, 1));
  const char *name = lua_tolstring(L, 1, &len);
  if (len == 0) return luaL_argerror(L, 1, "non-empty name expected");
  pogo_id id;
  if (!pogo_ident_is_pid(L, 2, &id)) return luaL_argerror(L, 2, "pid expected");
  if (id.node != 0) return luaL_error(L, "pogo.register: %s is not a local pid", luaL_tolstring(L, 2, NULL));
  pogo_proc *p = pogo_proc_get(N, &id);
  if (!p) return luaL_error(L, "noproc: cannot register '%s': process is not alive", name);
  pogo_node_push_ref(L, N->ref_names);
  lua_pushvalue(L, 1);
  if (lua_rawget(L, -2) != LUA_TNIL) return luaL_error(L, "pogo.register: name '%s' is already registered", name);
  lua_pop(L, 1);
  if (p->flags & PF_NAMED) return luaL_error(L, "pogo.register: %s already has a name", luaL_tolstring(L, 2, NULL));
  lua_pushvalue(L, 1);
  lua_pushvalue(L, 2);
  lua_rawset(L, -3);
  pogo_node_push_ref(L, N->ref_slotname);
  lua_pushvalue(L, 1);
  lua_rawseti(L, -2, p->slot);
  p->flags |= PF_NAMED;
  lua_pushboolean(L, 1);
  return 1;
}

/* unregister(name) -> true if it was registered */
static int l_unregister(lua_State *L) {
  pogo_node *N = POGO_NODE(L);
  if (lua_type(L, 1) != LUA_TSTRING)
    return luaL_error(L, "bad argument #1 to 'pogo.unregister' (string expected, got %s)", luaL_typename(L, 1));
  pogo_node_push_ref(L, N->ref_names);
  lua_pushvalue(L, 1);
  lua_rawget(L, -2);
  pogo_id id;
  if (!pogo_ident_is_pid(L, -1, &id)) { lua_pushboolean(L, 0); return 1; }
  pogo_proc *p = pogo_proc_get(N, &id);
  if (p) pogo_names_release(N, L, p);
  else {
    lua_pushvalue(L, 1);
    lua_pushnil(L);
    lua_rawset(L, -4);
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* whereis(name) -> pid | nil */
static int l_whereis(lua_State *L) {
  pogo_node *N = POGO_NODE(L);
  luaL_checkany(L, 1);
  pogo_node_push_ref(L, N->ref_names);
  lua_pushvalue(L, 1);
  lua_rawget(L, -2);
  return 1;
}

/* registered() -> array of names */
static int l_registered(lua_State *L) {
  pogo_node *N = POGO_NODE(L);
  pogo_node_push_ref(L, N->ref_names);
  lua_newtable(L);
  lua_Integer i = 0;
  lua_pushnil(L);
  while (lua_next(L, -3)) {
    lua_pop(L, 1);
    lua_pushvalue(L, -1);
    lua_rawseti(L, -3, ++i);
  }
  return 1;
}

void pogo_names_register(lua_State *L) {
  static const luaL_Reg fns[] = {
    {"register", l_register}, {"unregister", l_unregister}, {"whereis", l_whereis},
    {"registered", l_registered}, {NULL, NULL}};
  pogo_node_setfuncs(L, fns);
}
