/*
 * pg_sync.c: a sync of one node's members, applied to the groups' membership
 * index (pg.c; what the two share is in pg_ix.h) step by step.
 *
 * Contract
 * - ix:sync_begin(name) makes the state of a sync (a table, opaque to Lua:
 *   the slots ST_*); ix:sync_chunk(st, items) adds a chunk's items to it
 *   without touching the index; ix:sync_step(st, budget) then applies it a
 *   bounded slice at a time: (scan) the node's old memberships are walked and
 *   the groups absent from the sync noted; (apply) each group of the sync gets
 *   its difference, leaves then joins, one event per group; (drop) each noted
 *   group loses that node's members. ix:sync_node(name, list) runs the same
 *   steps without a bound. Events are as pg.c's contract says.
 * - A step does about `budget` units of work (a unit: a member looked at or
 *   moved) and always finishes the group it started, so its cost is
 *   O(budget + members of the largest group).
 * - Between the steps the index is whole: each group shows either its old or
 *   its new members of that node. The other changes of that node's members
 *   must wait for the last step (pg.lua's scope process applies one message
 *   at a time); if one is made anyway (x->epoch moves) during the scan, the
 *   scan starts again, so the sync still replaces exactly what was known.
 */
#include "pg_ix.h"

enum { ST_NODE = 1, ST_NEWC, ST_PHASE, ST_CURSOR, ST_AFF, ST_EPOCH, ST_N = ST_EPOCH };
enum { PH_CHUNKS = 0, PH_SCAN, PH_APPLY, PH_DROP, PH_DONE };

/* Push a new sync state for the node named at idx; 0 (nothing pushed) for a
 * bad name or this node's own. */
static int sync_state(lua_State *L, pg_ix *x, int idx) {
  int remote;
  int64_t node = pogo_pg_node_arg(x, L, idx, &remote);
  if (node <= 0) return 0;
  lua_createtable(L, ST_N, 0);
  st_setint(L, lua_gettop(L), ST_NODE, node);
  lua_newtable(L); /* key -> pid | {pid -> count} (see sync_add) */
  lua_rawseti(L, -2, ST_NEWC);
  st_setint(L, lua_gettop(L), ST_PHASE, PH_CHUNKS);
  lua_newtable(L); /* key -> true: old groups absent from the sync */
  lua_rawseti(L, -2, ST_AFF);
  return 1;
}

/* The sync state at idx (raises for anything else: pg.lua's mistake). */
static uint32_t check_state(lua_State *L, int idx) {
  luaL_checktype(L, idx, LUA_TTABLE);
  lua_Integer node = st_int(L, idx, ST_NODE);
  luaL_argcheck(L, node > 0 && node <= UINT32_MAX, idx, "pg sync state expected");
  return (uint32_t)node;
}

/* Add the items at idx (an array of {group, pids}; a group may appear in
 * several items; malformed items and other nodes' pids are ignored) to the
 * state ST of a sync of `node`. O(items). */
static void sync_add(lua_State *L, pg_ix *x, int ST, uint32_t node, int idx) {
  if (!lua_istable(L, idx) || st_int(L, ST, ST_PHASE) != PH_CHUNKS) return;
  int top = lua_gettop(L);
  lua_rawgeti(L, ST, ST_NEWC);
  const int NEWC = top + 1;
  char err[POGO_CODEC_ERRLEN];
  lua_Integer nitems = (lua_Integer)lua_rawlen(L, idx);
  for (lua_Integer i = 1; i <= nitems; i++) {
    lua_settop(L, NEWC);
    if (lua_rawgeti(L, idx, i) != LUA_TTABLE) continue;
    int item = NEWC + 1;
    lua_rawgeti(L, item, 1);
    int grp = item + 1;
    if (lua_isnil(L, grp) || lua_rawgeti(L, item, 2) != LUA_TTABLE) continue;
    int pids = item + 2;
    if (pogo_pg_push_key(L, x, grp, err)) continue;
    int K = item + 3;
    /* NEWC[K]: the pid itself while the group has one membership (most
     * do: no table per group), else {pid -> count} */
    lua_pushvalue(L, K);
    int t = lua_rawget(L, NEWC);
    int PC = K + 1;
    lua_Integer np = (lua_Integer)lua_rawlen(L, pids);
    for (lua_Integer j = 1; j <= np; j++) {
      lua_rawgeti(L, pids, j);
      int pid = lua_gettop(L);
      const pogo_id *id = pid_at(L, x, pid);
      if (!id || id->node != node) {
        lua_pop(L, 1);
        continue;
      }
      if (t == LUA_TNIL) {
        lua_pushvalue(L, K);
        lua_pushvalue(L, pid);
        lua_rawset(L, NEWC);
        lua_replace(L, PC);
        t = LUA_TUSERDATA;
        continue;
      }
      if (t != LUA_TTABLE) { /* a second membership: the table form */
        lua_createtable(L, 0, 2);
        lua_pushvalue(L, PC);
        lua_pushinteger(L, 1);
        lua_rawset(L, -3);
        lua_replace(L, PC);
        lua_pushvalue(L, K);
        lua_pushvalue(L, PC);
        lua_rawset(L, NEWC);
        t = LUA_TTABLE;
      }
      lua_pushvalue(L, pid);
      lua_rawget(L, PC);
      lua_Integer c = lua_tointeger(L, -1);
      lua_pop(L, 1);
      lua_pushinteger(L, c + 1);
      lua_rawset(L, PC);
    }
    if (t == LUA_TNIL) { /* no member of that node: the group is in the sync all the same */
      lua_pushvalue(L, K);
      lua_newtable(L);
      lua_rawset(L, NEWC);
    }
  }
  lua_settop(L, top);
}

typedef struct scan_ctx {
  int newc, aff;
} scan_ctx;

/* An old membership (key at K): note its group if the sync does not have it. */
static void scan_key(lua_State *L, void *ud, int K, lua_Integer count) {
  (void)count;
  scan_ctx *ctx = ud;
  lua_pushvalue(L, K);
  int t = lua_rawget(L, ctx->newc);
  lua_pop(L, 1);
  if (t != LUA_TNIL) return;
  lua_pushvalue(L, K);
  lua_pushboolean(L, 1);
  lua_rawset(L, ctx->aff);
}

/* Remove from entry E, for each pid p with REM[p] = c > 0, c of its members
 * (REM is consumed); the removed ones are appended to the array at out.
 * Returns how many members remain. */
static lua_Integer compact_counts(lua_State *L, int E, int REM, int out) {
  lua_Integer n = (lua_Integer)lua_rawlen(L, E), w = 2;
  lua_Integer nout = (lua_Integer)lua_rawlen(L, out);
  for (lua_Integer i = 2; i <= n; i++) {
    lua_rawgeti(L, E, i);
    int pid = lua_gettop(L);
    lua_pushvalue(L, pid);
    lua_Integer c = lua_rawget(L, REM) == LUA_TNUMBER ? lua_tointeger(L, -1) : 0;
    lua_pop(L, 1);
    if (c > 0) {
      lua_pushvalue(L, pid);
      if (c > 1) lua_pushinteger(L, c - 1);
      else lua_pushnil(L);
      lua_rawset(L, REM);
      lua_rawseti(L, out, ++nout);
    } else {
      if (w != i) lua_rawseti(L, E, w);
      else lua_pop(L, 1);
      w++;
    }
  }
  for (lua_Integer i = n; i >= w; i--) {
    lua_pushnil(L);
    lua_rawseti(L, E, i);
  }
  return w - 2;
}

/* The members removed from group K (at out) leave the node table NT. */
static void nt_drop_all(lua_State *L, int NT, int K, int out) {
  lua_Integer n = (lua_Integer)lua_rawlen(L, out);
  for (lua_Integer i = 1; i <= n; i++) {
    lua_rawgeti(L, out, i);
    int gone = 0;
    pogo_pg_nt_drop(L, NT, lua_gettop(L), K, &gone);
    lua_pop(L, 1);
  }
}

/* Apply the sync's members of group K (PC: {pid -> count}) to that group:
 * the node's members it lacks leave, then those it adds join; an event is
 * added to EV. Returns the units of work. */
static lua_Integer apply_group(lua_State *L, pg_ix *x, int G, int NT, int EV, uint32_t node, int K, int PC) {
  int top = lua_gettop(L);
  lua_Integer units = 1;
  lua_newtable(L); /* old counts: pid -> count */
  const int OC = top + 1;
  lua_pushvalue(L, K);
  int has = lua_rawget(L, G) == LUA_TTABLE;
  int E = top + 2;
  if (has) {
    lua_Integer n = (lua_Integer)lua_rawlen(L, E);
    units += n;
    for (lua_Integer i = 2; i <= n; i++) {
      lua_rawgeti(L, E, i);
      if (pid_node(L, -1) == node) {
        lua_pushvalue(L, -1);
        lua_rawget(L, OC);
        lua_Integer c = lua_tointeger(L, -1);
        lua_pop(L, 1);
        lua_pushinteger(L, c + 1);
        lua_rawset(L, OC);
      } else {
        lua_pop(L, 1);
      }
    }
  }
  lua_pushnil(L); /* left, made on demand */
  lua_pushnil(L); /* joined */
  const int LEFT = top + 3, JOINED = top + 4;
  /* leaves: the old counts above the new ones */
  if (has) {
    lua_newtable(L);
    int REM = lua_gettop(L);
    int any = 0;
    lua_pushnil(L);
    while (lua_next(L, OC)) {
      lua_Integer oc = lua_tointeger(L, -1);
      lua_pop(L, 1);
      lua_pushvalue(L, -1);
      lua_Integer nc = lua_rawget(L, PC) == LUA_TNUMBER ? lua_tointeger(L, -1) : 0;
      lua_pop(L, 1);
      if (oc > nc) {
        lua_pushvalue(L, -1);
        lua_pushinteger(L, oc - nc);
        lua_rawset(L, REM);
        any = 1;
      }
    }
    if (any) {
      lua_newtable(L);
      lua_replace(L, LEFT);
      compact_counts(L, E, REM, LEFT);
      nt_drop_all(L, NT, K, LEFT);
    }
    lua_settop(L, JOINED);
  }
  /* joins: the new counts above the old ones */
  lua_pushnil(L);
  while (lua_next(L, PC)) {
    int pid = lua_gettop(L) - 1;
    lua_Integer nc = lua_tointeger(L, pid + 1);
    lua_pushvalue(L, pid);
    lua_Integer oc = lua_rawget(L, OC) == LUA_TNUMBER ? lua_tointeger(L, -1) : 0;
    lua_settop(L, pid);
    units++;
    if (nc <= oc) continue;
    if (!has) { /* a new group: its value from its key */
      size_t kl, used_bytes;
      char err[POGO_CODEC_ERRLEN];
      const char *kb = lua_tolstring(L, K, &kl);
      if (pogo_codec_decode(L, kb, kl, &used_bytes, &x->N->ext, err) != 0) lua_pushvalue(L, K);
      pogo_pg_push_entry(L, x, G, K, lua_gettop(L), 0);
      lua_replace(L, E);
      lua_pop(L, 1);
      has = 1;
    }
    if (lua_isnil(L, JOINED)) {
      lua_newtable(L);
      lua_replace(L, JOINED);
    }
    for (lua_Integer t = oc; t < nc; t++) {
      pogo_pg_add_member(L, E, NT, pid, K);
      lua_pushvalue(L, pid);
      lua_rawseti(L, JOINED, (lua_Integer)lua_rawlen(L, JOINED) + 1);
    }
    units += nc - oc;
  }
  if (!lua_isnil(L, LEFT) || !lua_isnil(L, JOINED)) {
    lua_rawgeti(L, E, 1);
    pogo_pg_push_event(L, EV, lua_gettop(L), K, lua_isnil(L, JOINED) ? 0 : JOINED, lua_isnil(L, LEFT) ? 0 : LEFT);
    lua_pop(L, 1);
  }
  if (has && lua_rawlen(L, E) <= 1) pogo_pg_drop_group(L, x, G, K);
  lua_settop(L, top);
  return units;
}

/* Group K lost in the sync: the node's members leave it (event into EV).
 * Returns the units of work. */
static lua_Integer drop_node_group(lua_State *L, pg_ix *x, int G, int NT, int EV, uint32_t node, int K) {
  int top = lua_gettop(L);
  lua_pushvalue(L, K);
  if (lua_rawget(L, G) != LUA_TTABLE) {
    lua_settop(L, top);
    return 1;
  }
  int E = top + 1;
  lua_Integer units = 1 + (lua_Integer)lua_rawlen(L, E);
  lua_rawgeti(L, E, 1);
  lua_newtable(L);
  int OUT = top + 3;
  if (pogo_pg_compact(L, E, 0, node, OUT) == 0) pogo_pg_drop_group(L, x, G, K);
  if (lua_rawlen(L, OUT) > 0) {
    nt_drop_all(L, NT, K, OUT);
    pogo_pg_push_event(L, EV, top + 2, K, 0, OUT);
  }
  lua_settop(L, top);
  return units;
}

/* Run the sync ST for about `budget` units; events are appended to EV.
 * Returns whether the sync is done. */
static int sync_run(lua_State *L, pg_ix *x, int ST, uint32_t node, lua_Integer budget, int EV) {
  int top = lua_gettop(L);
  lua_getiuservalue(L, 1, UV_GROUPS);
  lua_getiuservalue(L, 1, UV_NODES);
  lua_rawgeti(L, ST, ST_NEWC);
  lua_rawgeti(L, ST, ST_AFF);
  const int G = top + 1, P = top + 2, NEWC = top + 3, AFF = top + 4;
  pogo_pg_push_node_table(L, P, node, 1);
  const int NT = top + 5;
  lua_Integer phase = st_int(L, ST, ST_PHASE), used = 0;
  if (phase == PH_CHUNKS) {
    phase = PH_SCAN;
    st_setint(L, ST, ST_EPOCH, x->epoch);
  }
  while (phase != PH_DONE && used < budget) {
    lua_settop(L, NT);
    if (phase == PH_SCAN && st_int(L, ST, ST_EPOCH) != x->epoch) {
      /* that node's members changed under the scan: scan again */
      lua_newtable(L);
      lua_rawseti(L, ST, ST_AFF);
      lua_rawgeti(L, ST, ST_AFF);
      lua_replace(L, AFF);
      lua_pushnil(L);
      lua_rawseti(L, ST, ST_CURSOR);
      st_setint(L, ST, ST_EPOCH, x->epoch);
    }
    int src = phase == PH_SCAN ? NT : phase == PH_APPLY ? NEWC : AFF;
    lua_rawgeti(L, ST, ST_CURSOR);
    int more = 0;
    while (used < budget && (more = lua_next(L, src)) != 0) {
      int k = lua_gettop(L) - 1;
      if (phase == PH_SCAN) {
        scan_ctx ctx = {NEWC, AFF};
        used++;
        if (lua_type(L, k + 1) == LUA_TTABLE) used += (lua_Integer)lua_rawlen(L, k + 1);
        pogo_pg_each_membership(L, k + 1, scan_key, &ctx);
      } else if (phase == PH_APPLY) {
        if (!lua_istable(L, k + 1)) { /* one pid, once */
          lua_createtable(L, 0, 1);
          lua_pushvalue(L, k + 1);
          lua_pushinteger(L, 1);
          lua_rawset(L, -3);
          lua_replace(L, k + 1);
        }
        used += apply_group(L, x, G, NT, EV, node, k, k + 1);
      } else {
        used += drop_node_group(L, x, G, NT, EV, node, k);
      }
      lua_settop(L, k);
    }
    if (more) { /* the key on top is where the next step goes on */
      lua_rawseti(L, ST, ST_CURSOR);
    } else {
      lua_pushnil(L);
      lua_rawseti(L, ST, ST_CURSOR);
      phase++;
    }
  }
  st_setint(L, ST, ST_PHASE, phase);
  if (phase == PH_DONE) { /* a node with no member left has no node table (as after remove_node) */
    lua_settop(L, NT);
    lua_pushnil(L);
    if (lua_next(L, NT)) {
      lua_pop(L, 2);
    } else {
      lua_pushnil(L);
      lua_rawseti(L, P, node);
    }
  }
  lua_settop(L, top);
  return phase == PH_DONE;
}

/* ix:sync_begin(name) -> state | nil: a sync of that node's members begins
 * (nil for this node's own name). */
static int ix_sync_begin(lua_State *L) {
  pg_ix *x = check_ix(L);
  lua_settop(L, 2);
  return sync_state(L, x, 2);
}

/* ix:sync_chunk(state, items): add a chunk of the sync (an array of
 * {group, pids}); the index does not change. O(items). */
static int ix_sync_chunk(lua_State *L) {
  pg_ix *x = check_ix(L);
  lua_settop(L, 3);
  uint32_t node = check_state(L, 2);
  sync_add(L, x, 2, node, 3);
  return 0;
}

/* ix:sync_step(state, budget) -> events, done: apply about `budget` units of
 * the sync (see above); events as remove_node's. */
static int ix_sync_step(lua_State *L) {
  pg_ix *x = check_ix(L);
  lua_Integer budget = luaL_checkinteger(L, 3);
  lua_settop(L, 3);
  uint32_t node = check_state(L, 2);
  lua_newtable(L);
  int done = sync_run(L, x, 2, node, budget > 0 ? budget : 1, 4);
  lua_pushboolean(L, done);
  return 2;
}

/* ix:sync_node(name, list) -> events | nil
 * Replace the memberships of that node with `list`, an array of
 * {group, pids} (a group may appear in several items), in one call: the
 * steps of a sync without a bound (for tests and small syncs). */
static int ix_sync_node(lua_State *L) {
  pg_ix *x = check_ix(L);
  lua_settop(L, 3);
  if (!sync_state(L, x, 2)) return 0;
  uint32_t node = check_state(L, 4);
  sync_add(L, x, 4, node, 3);
  lua_newtable(L);
  sync_run(L, x, 4, node, LUA_MAXINTEGER, 5);
  return 1;
}

const luaL_Reg pogo_pg_sync_methods[] = {
  {"sync_node", ix_sync_node}, {"sync_begin", ix_sync_begin}, {"sync_chunk", ix_sync_chunk},
  {"sync_step", ix_sync_step}, {NULL, NULL}};
