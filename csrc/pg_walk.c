/*
 * pg_walk.c: walks, the local members of the groups' membership index (pg.c;
 * what the two share is in pg_ix.h) sent to a new peer, a bounded step at a
 * time.
 *
 * Contract
 * - ix:walk_begin() takes a flat copy of the local pids (O(local pids): a
 *   pid per slot, no table per member or group) and registers the walk;
 *   ix:walk_step(w, budget) returns the next items {group, pids} (about
 *   `budget` memberships, a group in as many items as it has local members
 *   walked) as they were at walk_begin. The last step unregisters the walk;
 *   ix:walk_reset() drops them all (a restarted scope process: the old one's
 *   walks are dead).
 * - For that, a local join, leave or remove_pid (pg.c) first calls
 *   pogo_pg_walks_save, which saves, for each walk, the memberships of each
 *   pid it touches that the walk has not reached yet and not saved yet (a
 *   copy of one pid's memberships): the walk sends those instead of the live
 *   ones. With no walk, that costs one test. Groups emptied meanwhile are
 *   decoded from their key.
 * - Walk state: a table {pids, next index, saved {pid -> memberships | false},
 *   reached {pid -> true}}.
 */
#include "pg_ix.h"

enum { WK_PIDS = 1, WK_NEXT, WK_SAVED, WK_REACHED, WK_N = WK_REACHED };

/* Push a copy of the memberships value at idx (a key, or a table). */
static void push_memberships_copy(lua_State *L, int idx) {
  if (!lua_istable(L, idx)) {
    if (lua_isnil(L, idx)) lua_pushboolean(L, 0);
    else lua_pushvalue(L, idx);
    return;
  }
  lua_newtable(L);
  int c = lua_gettop(L);
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    lua_pushvalue(L, -2);
    lua_insert(L, -2);
    lua_rawset(L, c);
  }
}

/* Before the local pid at `pid` changes: save its memberships in every walk
 * that has neither reached nor saved it. */
void pogo_pg_walks_save(lua_State *L, pg_ix *x, int pid) {
  if (x->nwalks == 0) return;
  int top = lua_gettop(L);
  lua_getiuservalue(L, 1, UV_WALKS);
  int WS = top + 1;
  lua_pushnil(L);
  while (lua_next(L, WS)) {
    int w = lua_gettop(L) - 1;
    lua_rawgeti(L, w, WK_REACHED);
    lua_pushvalue(L, pid);
    int reached = lua_rawget(L, -2) != LUA_TNIL;
    lua_rawgeti(L, w, WK_SAVED);
    int SV = lua_gettop(L);
    lua_pushvalue(L, pid);
    if (!reached && lua_rawget(L, SV) == LUA_TNIL) {
      lua_getiuservalue(L, 1, UV_NODES);
      lua_rawgeti(L, -1, 0);
      int NT0 = lua_gettop(L);
      lua_pushvalue(L, pid);
      if (lua_istable(L, NT0)) lua_rawget(L, NT0);
      else { lua_pop(L, 1); lua_pushnil(L); }
      int mem = lua_gettop(L);
      lua_pushvalue(L, pid);
      push_memberships_copy(L, mem);
      lua_rawset(L, SV);
    }
    lua_settop(L, w);
  }
  lua_settop(L, top);
}

/* pogo_pg_walks_save for each pid collected at J (see collect_pids, pg.c). */
void pogo_pg_walks_save_collected(lua_State *L, pg_ix *x, int J, int single, lua_Integer n) {
  if (x->nwalks == 0) return;
  for (lua_Integer i = 1; i <= n; i++) {
    push_collected(L, J, single, i);
    pogo_pg_walks_save(L, x, lua_gettop(L));
    lua_pop(L, 1);
  }
}

/* ix:walk_begin() -> walk: begin a snapshot of the local members, sent in
 * steps (see above). O(local pids). */
static int ix_walk_begin(lua_State *L) {
  pg_ix *x = check_ix(L);
  lua_settop(L, 1);
  lua_getiuservalue(L, 1, UV_NODES);
  lua_createtable(L, WK_N, 0);
  int W = 3;
  lua_newtable(L);
  int PIDS = 4;
  lua_Integer k = 0;
  if (lua_rawgeti(L, 2, 0) == LUA_TTABLE) {
    lua_pushnil(L);
    while (lua_next(L, 5)) {
      lua_pop(L, 1);
      lua_pushvalue(L, -1);
      lua_rawseti(L, PIDS, ++k);
    }
  }
  lua_settop(L, PIDS);
  lua_rawseti(L, W, WK_PIDS);
  st_setint(L, W, WK_NEXT, 1);
  lua_newtable(L);
  lua_rawseti(L, W, WK_SAVED);
  lua_newtable(L);
  lua_rawseti(L, W, WK_REACHED);
  lua_getiuservalue(L, 1, UV_WALKS);
  lua_pushvalue(L, W);
  lua_pushboolean(L, 1);
  lua_rawset(L, -3);
  lua_pop(L, 1);
  x->nwalks++;
  return 1;
}

/* Unregister the walk at W (if it still is). */
static void walk_end(lua_State *L, pg_ix *x, int W) {
  lua_getiuservalue(L, 1, UV_WALKS);
  lua_pushvalue(L, W);
  if (lua_rawget(L, -2) != LUA_TNIL) {
    lua_pushvalue(L, W);
    lua_pushnil(L);
    lua_rawset(L, -4);
    x->nwalks--;
  }
  lua_pop(L, 2);
}

typedef struct walk_ctx {
  pg_ix *x;
  int G, out, pid;
  lua_Integer units;
} walk_ctx;

/* One membership (key at K, count) of the walked pid: an item. */
static void walk_item(lua_State *L, void *ud, int K, lua_Integer count) {
  walk_ctx *ctx = ud;
  lua_createtable(L, 2, 0);
  lua_pushvalue(L, K);
  int have = lua_rawget(L, ctx->G) == LUA_TTABLE;
  if (have) {
    lua_rawgeti(L, -1, 1);
    lua_remove(L, -2);
  } else { /* the group has gone since: its value from its key */
    lua_pop(L, 1);
    size_t kl, used;
    char err[POGO_CODEC_ERRLEN];
    const char *kb = lua_tolstring(L, K, &kl);
    if (pogo_codec_decode(L, kb, kl, &used, &ctx->x->N->ext, err) != 0) {
      lua_pop(L, 1);
      return;
    }
  }
  lua_rawseti(L, -2, 1);
  lua_createtable(L, count > 0 && count < 64 ? (int)count : 1, 0);
  for (lua_Integer i = 1; i <= count; i++) {
    lua_pushvalue(L, ctx->pid);
    lua_rawseti(L, -2, i);
  }
  lua_rawseti(L, -2, 2);
  lua_rawseti(L, ctx->out, (lua_Integer)lua_rawlen(L, ctx->out) + 1);
  ctx->units += count + 1;
}

/* ix:walk_step(walk, budget) -> items, done: the next items of the walk,
 * about `budget` memberships; done when it has sent every pid (the walk
 * is then over). */
static int ix_walk_step(lua_State *L) {
  pg_ix *x = check_ix(L);
  luaL_checktype(L, 2, LUA_TTABLE);
  lua_Integer budget = luaL_checkinteger(L, 3);
  lua_settop(L, 3);
  lua_getiuservalue(L, 1, UV_GROUPS);
  lua_getiuservalue(L, 1, UV_NODES);
  lua_rawgeti(L, 5, 0);
  lua_rawgeti(L, 2, WK_PIDS);
  lua_rawgeti(L, 2, WK_SAVED);
  lua_rawgeti(L, 2, WK_REACHED);
  lua_newtable(L);
  const int G = 4, NT0 = 6, PIDS = 7, SV = 8, RE = 9, OUT = 10;
  if (!lua_istable(L, PIDS) || !lua_istable(L, SV) || !lua_istable(L, RE)) luaL_argerror(L, 2, "pg walk expected");
  lua_Integer next = st_int(L, 2, WK_NEXT), n = (lua_Integer)lua_rawlen(L, PIDS);
  walk_ctx ctx = {x, G, OUT, 0, 0};
  while (next <= n && ctx.units < budget) {
    lua_settop(L, OUT);
    lua_rawgeti(L, PIDS, next++);
    int pid = OUT + 1;
    lua_pushvalue(L, pid);
    lua_pushboolean(L, 1);
    lua_rawset(L, RE);
    lua_pushvalue(L, pid);
    if (lua_rawget(L, SV) == LUA_TNIL) { /* unchanged since walk_begin: the live memberships */
      lua_pop(L, 1);
      lua_pushvalue(L, pid);
      if (lua_istable(L, NT0)) lua_rawget(L, NT0);
      else { lua_pop(L, 1); lua_pushnil(L); }
    }
    ctx.pid = pid;
    ctx.units++;
    pogo_pg_each_membership(L, pid + 1, walk_item, &ctx);
  }
  lua_settop(L, OUT);
  st_setint(L, 2, WK_NEXT, next);
  int done = next > n;
  if (done) walk_end(L, x, 2);
  lua_pushboolean(L, done);
  return 2;
}

/* ix:walk_reset(): forget every walk. */
static int ix_walk_reset(lua_State *L) {
  pg_ix *x = check_ix(L);
  lua_newtable(L);
  lua_setiuservalue(L, 1, UV_WALKS);
  x->nwalks = 0;
  return 0;
}

const luaL_Reg pogo_pg_walk_methods[] = {
  {"walk_begin", ix_walk_begin}, {"walk_step", ix_walk_step}, {"walk_reset", ix_walk_reset},
  {NULL, NULL}};
