/*
 * nodenames.c: the node-name table, which turns node names into small
 * indexes so that a pid carries a number, not a string.
 *
 * Contract
 * - Index 0 is this node; its name is "nonode@nohost" until pogo.start sets
 *   it (core.set_node_name). Other names get the next index the first time
 *   they are seen (a decoded pid, a {name, node} destination, the node this
 *   one dialed, a dialer once it proved the cookie) and keep it for the
 *   node's life, so indexes never dangle. pogo_nodenames_find looks a name
 *   up without adding it: what an unauthenticated peer says must not grow
 *   the table.
 * - The transport keys its peers by these indexes: a remote pid's node field
 *   leads straight to its connection.
 * - The table is one Lua table (index -> name, name -> index) held by the node.
 */
#include "runtime.h"

const char *pogo_nodenames_get(pogo_node *N, lua_State *L, uint32_t node) {
  pogo_node_push_ref(L, N->ref_nodenames);
  lua_rawgeti(L, -1, node);
  const char *s = lua_tostring(L, -1); /* anchored in the table */
  lua_pop(L, 2);
  return s ? s : "?";
}

uint32_t pogo_nodenames_find(pogo_node *N, lua_State *L, const char *name, size_t len) {
  pogo_node_push_ref(L, N->ref_nodenames);
  lua_pushlstring(L, name, len);
  lua_rawget(L, -2);
  uint32_t idx = lua_isinteger(L, -1) ? (uint32_t)lua_tointeger(L, -1) : 0;
  lua_pop(L, 2);
  return idx;
}

uint32_t pogo_nodenames_index(pogo_node *N, lua_State *L, const char *name, size_t len) {
  pogo_node_push_ref(L, N->ref_nodenames);
  lua_pushlstring(L, name, len);
  lua_pushvalue(L, -1);
  lua_rawget(L, -3);
  if (lua_isinteger(L, -1)) {
    uint32_t idx = (uint32_t)lua_tointeger(L, -1);
    lua_pop(L, 3);
    return idx;
  }
  lua_pop(L, 1);
  uint32_t idx = ++N->nnodes;
  lua_pushvalue(L, -1);
  lua_rawseti(L, -3, idx);
  lua_pushinteger(L, idx);
  lua_rawset(L, -3);
  lua_pop(L, 1);
  return idx;
}

/* Name index 0 (this node). */
static void set_own_name(pogo_node *N, lua_State *L, const char *name, size_t len) {
  pogo_node_push_ref(L, N->ref_nodenames);
  if (lua_rawgeti(L, -1, 0) != LUA_TNIL) {
    lua_pushnil(L);
    lua_rawset(L, -3);
  } else {
    lua_pop(L, 1);
  }
  lua_pushlstring(L, name, len);
  lua_pushvalue(L, -1);
  lua_rawseti(L, -3, 0);
  lua_pushinteger(L, 0);
  lua_rawset(L, -3);
  lua_pop(L, 1);
}

void pogo_nodenames_setup(pogo_node *N, lua_State *L) { set_own_name(N, L, "nonode@nohost", 13); }

/* ---- Lua API ---- */

/* set_node_name(name): this node's name (index 0), set by pogo.start */
static int l_set_node_name(lua_State *L) {
  pogo_node *N = POGO_NODE(L);
  size_t len;
  const char *name = luaL_checklstring(L, 1, &len);
  set_own_name(N, L, name, len);
  return 0;
}

/* node_name() -> this node's name */
static int l_node_name(lua_State *L) {
  pogo_node *N = POGO_NODE(L);
  lua_pushstring(L, pogo_nodenames_get(N, L, 0));
  return 1;
}

void pogo_nodenames_register(lua_State *L) {
  static const luaL_Reg fns[] = {{"node_name", l_node_name}, {"set_node_name", l_set_node_name}, {NULL, NULL}};
  pogo_node_setfuncs(L, fns);
}
