/*
 * node.c: creation and teardown of the per-Lua-state node, and the glue that
 * registers the runtime's functions in the core table.
 *
 * Contract
 * - pogo_node_open(L) requires luv, takes its loop (luv_loop) and creates the
 *   node userdata, anchored in the registry; its __gc closes the transport if
 *   one runs (through the ops table, remote.h), frees every process, every
 *   table ref and closes its uv handles (freed by their close callbacks, which
 *   luv's loop finalizer runs).
 * - It installs the counting allocator (mem.c) when it opens and removes it
 *   in its __gc (which runs during lua_close, before Lua frees the rest),
 *   and makes luv's callbacks log their errors instead of ending the OS
 *   process (guard.c).
 * - A node exists from `require "pogo.core"` on; `pogo.start` (the transport,
 *   csrc/dist/) only adds a name and a way to reach other nodes.
 * - pogo_node_register adds the runtime's functions only; core.c, the
 *   composition root, adds the transport's, pg's, the ring's and the codec's.
 */
#include <stdlib.h>
#include <string.h>
#include <luv.h>

#include "runtime.h"
#include "node.h"
#include "remote.h"

static const char NODE_KEY = 'N'; /* address used as a registry key (constant) */

uint64_t pogo_node_now(pogo_node *N) {
  uv_update_time(N->loop);
  return uv_now(N->loop);
}

void pogo_node_push_ref(lua_State *L, int ref) { lua_rawgeti(L, LUA_REGISTRYINDEX, ref); }

pogo_node *pogo_node_of(lua_State *L) {
  lua_rawgetp(L, LUA_REGISTRYINDEX, &NODE_KEY);
  pogo_node *N = lua_touserdata(L, -1);
  lua_pop(L, 1);
  return N;
}

void pogo_node_setfuncs(lua_State *L, const luaL_Reg *fns) {
  for (; fns->name; fns++) {
    lua_pushvalue(L, -1);
    lua_pushcclosure(L, fns->func, 1);
    lua_setfield(L, -3, fns->name);
  }
}

static void uvh_close_cb(uv_handle_t *h) {
  pogo_uvh *u = h->data;
  if (--u->open == 0) free(u);
}

static int new_table_ref(lua_State *L, const char *weak) {
  lua_newtable(L);
  if (weak) {
    lua_newtable(L);
    lua_pushstring(L, weak);
    lua_setfield(L, -2, "__mode");
    lua_setmetatable(L, -2);
  }
  return luaL_ref(L, LUA_REGISTRYINDEX);
}

static int node_gc(lua_State *L) {
  pogo_node *N = lua_touserdata(L, 1);
  if (N->closed) return 0;
  pogo_remote_close(N, L);
  pogo_preempt_close(N);
  pogo_profile_close(N);
  pogo_host_close(N);
  pogo_proc_free_all(N, L);
  N->closed = 1;
  lua_pushnil(L);
  lua_setfield(L, LUA_REGISTRYINDEX, "pogo.node.ptr");
  if (N->uvh) {
    pogo_uvh *u = N->uvh;
    u->idle.data = u;
    u->timer.data = u;
    uv_close((uv_handle_t *)&u->idle, uvh_close_cb);
    uv_close((uv_handle_t *)&u->timer, uvh_close_cb);
    N->uvh = NULL;
  }
  free(N->procs);
  free(N->free_slots);
  free(N->rq);
  free(N->heap);
  free(N->exq);
  N->procs = NULL;
  N->free_slots = NULL;
  N->rq = NULL;
  N->heap = NULL;
  N->exq = NULL;
  N->nslots = N->cap = N->nfree = N->free_cap = 0;
  N->rq_len = N->rq_cap = N->heap_len = N->heap_cap = N->exq_len = N->exq_cap = 0;
  pogo_chunks_free(L, &N->threads);
  pogo_chunks_free(L, &N->pids);
  pogo_chunks_free(L, &N->pidcache);
  pogo_chunks_free(L, &N->refcache);
  int refs[] = {N->ref_mbox, N->ref_pool, N->ref_idents, N->ref_names,
                N->ref_slotname, N->ref_pending, N->ref_nodenames, N->ref_crash_mt, N->ref_namemon};
  for (size_t i = 0; i < sizeof refs / sizeof refs[0]; i++)
    luaL_unref(L, LUA_REGISTRYINDEX, refs[i]);
  pogo_mem_uninstall(N, L);
  return 0;
}

pogo_node *pogo_node_open(lua_State *L) {
  lua_rawgetp(L, LUA_REGISTRYINDEX, &NODE_KEY);
  if (lua_touserdata(L, -1)) {
    pogo_node *N = lua_touserdata(L, -1);
    return N; /* already open; left on the stack */
  }
  lua_pop(L, 1);

  /* luv must be loaded so that its loop exists and is shared with user code. */
  lua_getglobal(L, "require");
  lua_pushstring(L, "luv");
  lua_call(L, 1, 0);
  uv_loop_t *loop = luv_loop(L);
  if (!loop) luaL_error(L, "pogo: luv did not provide a loop");

  pogo_node *N = lua_newuserdatauv(L, sizeof *N, 0);
  memset(N, 0, sizeof *N);
  N->closed = 1; /* until fully set up */
  lua_newtable(L);
  lua_pushcfunction(L, node_gc);
  lua_setfield(L, -2, "__gc");
  lua_setmetatable(L, -2);

  lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
  N->L = lua_tothread(L, -1);
  lua_pop(L, 1);
  N->loop = loop;
  if (uv_random(NULL, NULL, &N->creation, sizeof N->creation, 0, NULL) != 0)
    N->creation = (uint32_t)uv_hrtime();
  if (N->creation == 0) N->creation = 1;
  N->next_serial = 1;
  N->next_ref = 1;
  N->preempt_us = POGO_DEFAULT_PREEMPT_US;

  pogo_chunks_init(L, &N->threads, 0);
  N->ref_mbox = new_table_ref(L, NULL);
  pogo_chunks_init(L, &N->pids, 0);
  pogo_chunks_init(L, &N->pidcache, 1);
  pogo_chunks_init(L, &N->refcache, 1);
  N->ref_idents = new_table_ref(L, "v");
  N->ref_names = new_table_ref(L, NULL);
  lua_createtable(L, POGO_DEFAULT_THREAD_POOL, 0);
  N->ref_pool = luaL_ref(L, LUA_REGISTRYINDEX);
  N->pool_max = POGO_DEFAULT_THREAD_POOL;
  N->ref_slotname = new_table_ref(L, NULL);
  N->ref_pending = new_table_ref(L, NULL);
  N->ref_nodenames = new_table_ref(L, NULL);
  N->ref_namemon = new_table_ref(L, NULL);
  pogo_crash_setup(N, L);

  N->uvh = calloc(1, sizeof *N->uvh);
  if (!N->uvh) luaL_error(L, "pogo: out of memory");
  uv_idle_init(loop, &N->uvh->idle);
  uv_timer_init(loop, &N->uvh->timer);
  N->uvh->open = 2;
  N->uvh->idle.data = N;
  N->uvh->timer.data = N;

  pogo_ident_setup(N, L);
  pogo_nodenames_setup(N, L);
  pogo_mem_install(N, L);
  pogo_guard_luv(L);
  N->closed = 0;

  lua_pushvalue(L, -1);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &NODE_KEY);
  return N; /* node userdata left on the stack */
}

void pogo_node_register(lua_State *L) {
  pogo_ident_register(L);
  pogo_nodenames_register(L);
  pogo_proc_register(L);
  pogo_sched_register(L);
  pogo_host_register(L);
  pogo_mailbox_register(L);
  pogo_links_register(L);
  pogo_names_register(L);
  pogo_node_stats_register(L);
  pogo_preempt_register(L);
  pogo_nested_register(L);
  pogo_profile_register(L);
  pogo_mem_register(L);
  pogo_via_register(L);
  pogo_crash_register(L);
}
