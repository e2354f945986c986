/*
 * pg_ix.h: what the three files of the groups' membership index share (not
 * the core's view: that is pg.h). pg.c holds the index, pg_sync.c applies a
 * peer's sync to it in steps, pg_walk.c sends this node's members in steps.
 *
 * Contract
 * - pg_ix is the index's userdata; its Lua tables are in the user values:
 *   1 groups: key (canonical bytes) -> entry {group, pid, pid, ...} (an array;
 *             members unordered)
 *   2 nodes:  node index (0 = this node) -> {pid -> memberships}, the per-pid
 *             and per-node indexes; memberships is the key itself when the pid
 *             joined one group once (the common case: half the memory), else
 *             a table {[key] = count, [0] = number of keys}
 *   3 walks:  walk state -> true: the snapshots being sent (pg_walk.c)
 *   (Lua interns short strings and its tables are a well-kept hash map, so no
 *   hand-written C hash table.) The only C memory is the encoding buffer,
 *   freed by __gc.
 * - The helpers below are pg.c's, but for pogo_pg_walks_save* (pg_walk.c's);
 *   each says its part where it is defined. check_ix, pid_at, pid_node,
 *   push_collected, st_int and st_setint are inline, as they were when the
 *   index was one file: every method and inner loop uses them.
 * - pogo_pg_sync_methods and pogo_pg_walk_methods: the methods of pg_sync.c
 *   and pg_walk.c, registered by pg.c with its own (upvalue 1: the index
 *   metatable, for check_ix).
 */
#ifndef POGO_PG_IX_H
#define POGO_PG_IX_H

#include <msgpack.h>

#include "runtime.h"

#define UV_GROUPS 1
#define UV_NODES 2
#define UV_WALKS 3 /* walk state -> true: the snapshots being sent (see pg_walk.c) */

typedef struct pg_ix {
  pogo_node *N;
  const void *pid_mt; /* metatable of pids (ident.c's "pogo.pid"), for a fast check */
  msgpack_sbuffer sb;
  msgpack_packer pk;
  lua_Integer ngroups;
  lua_Integer epoch; /* counts the changes of other nodes' members, but a sync's */
  lua_Integer nwalks; /* walks in UV_WALKS */
} pg_ix;

/* Every method starts here: the index (methods have the index metatable as
 * upvalue 1: a pointer comparison, no registry lookup), and stack room for
 * the deepest path (sync_node nests about 30 slots). */
static inline pg_ix *check_ix(lua_State *L) {
  if (!lua_getmetatable(L, 1) || !lua_rawequal(L, -1, lua_upvalueindex(1)))
    luaL_typeerror(L, 1, "pg index");
  lua_pop(L, 1);
  luaL_checkstack(L, 48, "pg index");
  return lua_touserdata(L, 1);
}

/* The id of the pid at idx, or NULL if the value is not a pid. As
 * pogo_ident_is_pid, but comparing the metatable by address. */
static inline const pogo_id *pid_at(lua_State *L, pg_ix *x, int idx) {
  if (lua_type(L, idx) != LUA_TUSERDATA || !lua_getmetatable(L, idx)) return NULL;
  const void *mt = lua_topointer(L, -1);
  lua_pop(L, 1);
  return mt == x->pid_mt ? lua_touserdata(L, idx) : NULL;
}

/* Node of the pid at idx (the index only ever stores validated pids). */
static inline uint32_t pid_node(lua_State *L, int idx) {
  const pogo_id *id = lua_touserdata(L, idx);
  return id ? id->node : UINT32_MAX;
}

/* Push the i-th pid collected at J. */
static inline void push_collected(lua_State *L, int J, int single, lua_Integer i) {
  if (single) lua_pushvalue(L, J);
  else lua_rawgeti(L, J, i);
}

/* A slot of a state table (a sync's, a walk's) as an integer. */
static inline lua_Integer st_int(lua_State *L, int ST, int slot) {
  lua_rawgeti(L, ST, slot);
  lua_Integer v = lua_tointeger(L, -1);
  lua_pop(L, 1);
  return v;
}

static inline void st_setint(lua_State *L, int ST, int slot, lua_Integer v) {
  lua_pushinteger(L, v);
  lua_rawseti(L, ST, slot);
}

/* pg.c */
int pogo_pg_push_key(lua_State *L, pg_ix *x, int idx, char err[POGO_CODEC_ERRLEN]);
int64_t pogo_pg_node_arg(pg_ix *x, lua_State *L, int idx, int *remote);
void pogo_pg_push_node_table(lua_State *L, int P, uint32_t node, int create);
void pogo_pg_push_entry(lua_State *L, pg_ix *x, int G, int K, int gidx, int copy);
int pogo_pg_add_member(lua_State *L, int E, int NT, int pid, int K);
void pogo_pg_drop_group(lua_State *L, pg_ix *x, int G, int K);
int pogo_pg_nt_drop(lua_State *L, int NT, int pid, int K, int *gone);
lua_Integer pogo_pg_compact(lua_State *L, int E, int pid, uint32_t node, int out);
void pogo_pg_push_event(lua_State *L, int ev, int gidx, int K, int j, int l);
void pogo_pg_each_membership(lua_State *L, int idx, void (*f)(lua_State *, void *, int, lua_Integer), void *ud);

/* pg_walk.c */
void pogo_pg_walks_save(lua_State *L, pg_ix *x, int pid);
void pogo_pg_walks_save_collected(lua_State *L, pg_ix *x, int J, int single, lua_Integer n);

extern const luaL_Reg pogo_pg_sync_methods[];
extern const luaL_Reg pogo_pg_walk_methods[];

#endif
