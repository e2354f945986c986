/*
 * node_stats.c: the runtime's counters for tools (pogo.observer, the web
 * page, /metrics): read in O(1), without listing processes.
 *
 * Contract
 * - core.node_stats() -> {processes =, run_queue =, messages =}: the live
 *   processes, the processes ready to run now, and the messages ever put in
 *   a local mailbox (local sends and messages from other nodes alike; a
 *   counter, so a rate is the difference of two readings).
 */
#include "runtime.h"

static int l_node_stats(lua_State *L) {
  pogo_node *N = POGO_NODE(L);
  lua_createtable(L, 0, 3);
  lua_pushinteger(L, (lua_Integer)N->live);
  lua_setfield(L, -2, "processes");
  lua_pushinteger(L, (lua_Integer)N->rq_len);
  lua_setfield(L, -2, "run_queue");
  lua_pushinteger(L, (lua_Integer)N->delivered);
  lua_setfield(L, -2, "messages");
  return 1;
}

void pogo_node_stats_register(lua_State *L) {
  static const luaL_Reg fns[] = {{"node_stats", l_node_stats}, {NULL, NULL}};
  pogo_node_setfuncs(L, fns);
}
