/*
 * pg.h: the membership index of replicated process groups (csrc/pg.c, with
 * pg_sync.c and pg_walk.c; the replication and the monitors are in
 * lua/pogo/pg.lua).
 *
 * Contract
 * - pogo_pg_register(L): adds pg_index() to the table at -2 (the node userdata
 *   is at -1, as for pogo_node_register). pg_index() returns a new, empty index:
 *   one per scope per node, owned by lua/pogo/pg.lua.
 */
#ifndef POGO_PG_H
#define POGO_PG_H

#include <lua.h>

void pogo_pg_register(lua_State *L);

#endif
