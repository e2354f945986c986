/*
 * pg.c: the membership index of replicated process groups (pogo.pg).
 *
 * The index is in three files: this one holds the index (its changes and its
 * queries); pg_sync.c applies a peer's sync to it in bounded steps; pg_walk.c
 * sends this node's members to a peer in bounded steps. pg_ix.h is what they
 * share: the index's struct, the layout of its tables, the helpers.
 *
 * Contract
 * - One index per scope per node: core.pg_index() returns a new, empty one.
 *   It records, for every group, its members (local and remote pids, a pid once
 *   per join, as Erlang's pg) and, for every pid, how many times it joined each
 *   group. It holds no policy: lua/pogo/pg.lua decides who may change what,
 *   replicates the changes and notifies monitors.
 * - A group is any serializable value except nil; its identity is its canonical
 *   encoding (codec.h), so equal tables are the same group whatever their
 *   construction order, and 1 and 1.0 are different groups. The index keeps its
 *   own copy of a table group, decoded from the canonical bytes when the group
 *   appears, so later changes to the caller's table do not matter. Group values
 *   it hands out are shared with the index: read-only.
 * - Local changes (no node argument) take pids of this node only: for bad input
 *   (a nil or unserializable group, any other value than a local pid) they
 *   change nothing and return nil and the reason, as members and key do for a
 *   bad group, so that pg.lua raises at its caller's position, out of any
 *   critical section (it never raises from here). Joins skip local pids that
 *   are not alive. Remote changes (a node name given) come from that node's
 *   scope process: pids of any other node and malformed input are ignored, so a
 *   peer can neither raise here nor change what another node owns.
 * - Costs: join O(encoding + pids); leave O(encoding + members of the group)
 *   (the pid is searched from the newest member); members O(members of the
 *   group), never a scan of the groups; groups O(groups); remove_pid
 *   O(memberships of the pid + members of its groups); remove_node O(members of
 *   the groups that node is in); sync_node O(that node's memberships, old and
 *   new). A peer's sync is applied in steps instead (sync_begin, sync_chunk
 *   per received chunk: O(its items), the index unchanged; then sync_step
 *   until done: O(budget + members of the largest group) each; see
 *   pg_sync.c), so that pg.lua can let the loop turn between steps; sync_node
 *   runs the same steps without a bound. The sender's side is in steps too
 *   (walk_begin: O(local pids), a flat copy; walk_step: O(budget); see
 *   pg_walk.c); a local change costs one test more while no walk runs, and a
 *   copy of the pid's memberships while one does.
 * - Events (remove_pid, remove_node, sync_node, sync_step) are arrays of
 *   {group, key, joined_pids | false, left_pids | false}, a pid repeated once per
 *   membership; within an event leaves are applied before joins.
 *
 * Layout: Lua tables in the userdata's user values (see pg_ix.h).
 */
#include <string.h>

#include "pg_ix.h"
#include "pg.h"

#define PG_MT "pogo.pg_index"
#define SB_KEEP (64 * 1024) /* larger encoding buffers are released after use */

static void sb_trim(pg_ix *x) {
  if (x->sb.alloc > SB_KEEP) {
    msgpack_sbuffer_destroy(&x->sb);
    msgpack_sbuffer_init(&x->sb);
  }
}

/* Push the canonical key of the value at idx. On failure push nothing, leave
 * the reason in err and return -1. */
int pogo_pg_push_key(lua_State *L, pg_ix *x, int idx, char err[POGO_CODEC_ERRLEN]) {
  x->sb.size = 0;
  int r = pogo_codec_encode(L, idx, &x->pk, &x->N->ext, "group", err);
  if (r == 0) lua_pushlstring(L, x->sb.data, x->sb.size);
  sb_trim(x);
  return r;
}

/* The pids argument at idx: 1 for a single pid, 0 for a table (its length in
 * *n), -1 for anything else. */
static int pids_arg(lua_State *L, pg_ix *x, int idx, lua_Integer *n) {
  if (pid_at(L, x, idx)) { *n = 1; return 1; }
  if (lua_type(L, idx) == LUA_TTABLE) { *n = (lua_Integer)lua_rawlen(L, idx); return 0; }
  *n = 0;
  return -1;
}

/* Push nodes[node], creating it if `create`; nil otherwise. */
void pogo_pg_push_node_table(lua_State *L, int P, uint32_t node, int create) {
  if (lua_rawgeti(L, P, node) != LUA_TTABLE && create) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_rawseti(L, P, node);
  }
}

static void add_count(lua_State *L, int t, lua_Integer key, lua_Integer d) {
  lua_rawgeti(L, t, key);
  lua_Integer v = lua_tointeger(L, -1) + d;
  lua_pop(L, 1);
  lua_pushinteger(L, v);
  lua_rawseti(L, t, key);
}

/* Push the entry of key K, creating it with the group at gidx (copied when
 * `copy` and it is a table) if missing. */
void pogo_pg_push_entry(lua_State *L, pg_ix *x, int G, int K, int gidx, int copy) {
  lua_pushvalue(L, K);
  if (lua_rawget(L, G) == LUA_TTABLE) return;
  lua_pop(L, 1);
  lua_createtable(L, 2, 0);
  int pushed = 0;
  if (copy && lua_type(L, gidx) == LUA_TTABLE) {
    size_t kl, used;
    char err[POGO_CODEC_ERRLEN];
    const char *kb = lua_tolstring(L, K, &kl);
    pushed = pogo_codec_decode(L, kb, kl, &used, &x->N->ext, err) == 0;
  }
  if (!pushed) lua_pushvalue(L, gidx);
  lua_rawseti(L, -2, 1);
  lua_pushvalue(L, K);
  lua_pushvalue(L, -2);
  lua_rawset(L, G);
  x->ngroups++;
}

/* Add one membership of the pid at `pid` in the group of key K (entry E) to
 * the node table NT. Returns 1 if the pid had no membership before. */
int pogo_pg_add_member(lua_State *L, int E, int NT, int pid, int K) {
  int fresh = 0;
  lua_pushvalue(L, pid);
  int t = lua_rawget(L, NT);
  if (t == LUA_TNIL) { /* first membership: the key stands for it */
    lua_pop(L, 1);
    lua_pushvalue(L, pid);
    lua_pushvalue(L, K);
    lua_rawset(L, NT);
    fresh = 1;
    goto append;
  }
  if (t == LUA_TSTRING) { /* second one: switch to the table form */
    int same = lua_rawequal(L, -1, K);
    lua_createtable(L, 0, 3);
    lua_pushvalue(L, -2);
    lua_pushinteger(L, same ? 2 : 1);
    lua_rawset(L, -3);
    if (!same) {
      lua_pushvalue(L, K);
      lua_pushinteger(L, 1);
      lua_rawset(L, -3);
    }
    lua_pushinteger(L, same ? 1 : 2);
    lua_rawseti(L, -2, 0);
    lua_pushvalue(L, pid);
    lua_insert(L, -2);
    lua_rawset(L, NT);
    lua_pop(L, 1);
    goto append;
  }
  int pm = lua_gettop(L);
  lua_pushvalue(L, K);
  lua_rawget(L, pm);
  lua_Integer c = lua_tointeger(L, -1);
  lua_pop(L, 1);
  if (c == 0) add_count(L, pm, 0, 1);
  lua_pushvalue(L, K);
  lua_pushinteger(L, c + 1);
  lua_rawset(L, pm);
  lua_pop(L, 1);
append:;
  lua_Integer n = (lua_Integer)lua_rawlen(L, E);
  lua_pushvalue(L, pid);
  lua_rawseti(L, E, n + 1);
  return fresh;
}

/* Drop the group of key K (its entry is empty). */
void pogo_pg_drop_group(lua_State *L, pg_ix *x, int G, int K) {
  lua_pushvalue(L, K);
  lua_pushnil(L);
  lua_rawset(L, G);
  x->ngroups--;
}

/* Drop one membership of the pid at `pid` in the group of key K from the node
 * table NT (the entry is not touched). Returns 0 if it was not a member. Sets
 * *gone when the pid has no membership left. */
int pogo_pg_nt_drop(lua_State *L, int NT, int pid, int K, int *gone) {
  lua_pushvalue(L, pid);
  int t = lua_rawget(L, NT);
  if (t == LUA_TSTRING) {
    int same = lua_rawequal(L, -1, K);
    lua_pop(L, 1);
    if (!same) return 0;
    lua_pushvalue(L, pid);
    lua_pushnil(L);
    lua_rawset(L, NT);
    *gone = 1;
    return 1;
  }
  if (t != LUA_TTABLE) { lua_pop(L, 1); return 0; }
  int pm = lua_gettop(L);
  lua_pushvalue(L, K);
  lua_rawget(L, pm);
  lua_Integer c = lua_tointeger(L, -1);
  lua_pop(L, 1);
  if (c <= 0) { lua_pop(L, 1); return 0; }
  lua_pushvalue(L, K);
  if (c > 1) lua_pushinteger(L, c - 1);
  else lua_pushnil(L);
  lua_rawset(L, pm);
  if (c == 1) {
    add_count(L, pm, 0, -1);
    lua_rawgeti(L, pm, 0);
    if (lua_tointeger(L, -1) <= 0) {
      lua_pushvalue(L, pid);
      lua_pushnil(L);
      lua_rawset(L, NT);
      *gone = 1;
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  return 1;
}

/* Remove one membership of the pid at `pid` in the group of key K (entry E).
 * Returns 0 if it was not a member. Sets *gone when the pid has no membership
 * left. Drops the group when it becomes empty. */
static int del_member(lua_State *L, pg_ix *x, int G, int E, int NT, int pid, int K, int *gone) {
  if (!pogo_pg_nt_drop(L, NT, pid, K, gone)) return 0;
  lua_Integer n = (lua_Integer)lua_rawlen(L, E);
  for (lua_Integer i = n; i >= 2; i--) {
    lua_rawgeti(L, E, i);
    int eq = lua_rawequal(L, -1, pid);
    lua_pop(L, 1);
    if (!eq) continue;
    if (i != n) {
      lua_rawgeti(L, E, n);
      lua_rawseti(L, E, i);
    }
    lua_pushnil(L);
    lua_rawseti(L, E, n);
    break;
  }
  if (n <= 2) pogo_pg_drop_group(L, x, G, K);
  return 1;
}

/* Remove from entry E every member equal to the value at `pid` (pid > 0) or,
 * when pid == 0, every member of `node`. Removed members are appended to the
 * array at `out`. Returns how many members remain. */
lua_Integer pogo_pg_compact(lua_State *L, int E, int pid, uint32_t node, int out) {
  lua_Integer n = (lua_Integer)lua_rawlen(L, E), w = 2;
  lua_Integer nout = (lua_Integer)lua_rawlen(L, out);
  for (lua_Integer i = 2; i <= n; i++) {
    lua_rawgeti(L, E, i);
    int hit = pid ? lua_rawequal(L, -1, pid) : pid_node(L, -1) == node;
    if (hit) {
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

/* Append an event {group, key, joined | false, left | false} to the array at
 * ev; the group is at gidx, the key at K, the pid arrays at j and l (0 = none). */
void pogo_pg_push_event(lua_State *L, int ev, int gidx, int K, int j, int l) {
  lua_createtable(L, 4, 0);
  lua_pushvalue(L, gidx);
  lua_rawseti(L, -2, 1);
  lua_pushvalue(L, K);
  lua_rawseti(L, -2, 2);
  if (j) lua_pushvalue(L, j);
  else lua_pushboolean(L, 0);
  lua_rawseti(L, -2, 3);
  if (l) lua_pushvalue(L, l);
  else lua_pushboolean(L, 0);
  lua_rawseti(L, -2, 4);
  lua_rawseti(L, ev, (lua_Integer)lua_rawlen(L, ev) + 1);
}

/* Resolve the optional node name at idx: 0 (with *remote = 0) when absent.
 * Returns -1 if the name is this node's own (a peer cannot speak for us). */
int64_t pogo_pg_node_arg(pg_ix *x, lua_State *L, int idx, int *remote) {
  *remote = !lua_isnoneornil(L, idx);
  if (!*remote) return 0;
  size_t nl;
  const char *nn = luaL_checklstring(L, idx, &nl);
  uint32_t node = pogo_nodenames_index(x->N, L, nn, nl);
  return node == 0 ? -1 : (int64_t)node;
}

/* Whether the value at idx may change (1) or is skipped (0): remote mode keeps
 * the pids of `node` only; local mode returns -1, with the reason pushed, for
 * anything but a local pid, and for joins (alive) skips dead pids. */
static int pid_ok(lua_State *L, pg_ix *x, int idx, int remote, uint32_t node, int alive) {
  const pogo_id *id = pid_at(L, x, idx);
  if (remote) return id && id->node == node;
  if (!id) {
    lua_pushfstring(L, "pid expected, got %s", luaL_typename(L, idx));
    return -1;
  }
  if (id->node != 0) {
    luaL_tolstring(L, idx, NULL);
    lua_pushfstring(L, "%s is not a local pid", lua_tostring(L, -1));
    return -1;
  }
  return !alive || pogo_proc_get(x->N, id) != NULL;
}

/* Push the pids of the argument at 3 that may change (see pid_ok): the pid
 * itself when it is a single pid (*single = 1) or nil if it may not, else a
 * new array. Returns how many, or -1 (local mode) with the reason on top of
 * the stack: everything is validated before any change. */
static lua_Integer collect_pids(lua_State *L, pg_ix *x, int remote, uint32_t node, int alive, int *single) {
  lua_Integer n;
  *single = pids_arg(L, x, 3, &n) == 1;
  if (*single) {
    int ok = pid_ok(L, x, 3, remote, node, alive);
    if (ok < 0) return -1;
    if (ok) {
      lua_pushvalue(L, 3);
      return 1;
    }
    lua_pushnil(L);
    return 0;
  }
  if (!lua_istable(L, 3) && !remote) {
    lua_pushfstring(L, "pid or array of pids expected, got %s", luaL_typename(L, 3));
    return -1;
  }
  lua_createtable(L, n > 0 && n < 16 ? (int)n : 1, 0);
  int J = lua_gettop(L);
  lua_Integer nj = 0;
  for (lua_Integer i = 1; i <= n; i++) {
    lua_rawgeti(L, 3, i);
    int ok = pid_ok(L, x, lua_gettop(L), remote, node, alive);
    if (ok < 0) return -1;
    if (ok) lua_rawseti(L, J, ++nj);
    else lua_pop(L, 1);
  }
  return nj;
}

/* Push nil and the reason of a bad local argument; returns 2 (the results). */
static int bad_input(lua_State *L, const char *why) {
  lua_pushnil(L);
  lua_pushstring(L, why);
  return 2;
}

/* After collect_pids failed: return nil and the reason on top of the stack. */
static int bad_pids(lua_State *L) {
  lua_pushnil(L);
  lua_insert(L, -2);
  return 2;
}

/* Push the canonical key of the group at 2; on failure (nil or unserializable)
 * push nil and the reason and return 0. */
static int group_key(lua_State *L, pg_ix *x) {
  if (lua_isnil(L, 2)) {
    bad_input(L, "group must not be nil");
    return 0;
  }
  char err[POGO_CODEC_ERRLEN];
  if (pogo_pg_push_key(L, x, 2, err)) {
    bad_input(L, err);
    return 0;
  }
  return 1;
}

/* The arguments shared by ix:join and ix:leave: (group, pid_or_pids [, node]).
 * Pushes the group key at 5 and returns 1; returns 0 when the call is to be
 * ignored (bad input from a peer: nothing pushed) or, for bad local input,
 * with nil and the reason pushed (the caller returns them). */
static int change_args(lua_State *L, pg_ix *x, int *remote, int64_t *node) {
  *node = pogo_pg_node_arg(x, L, 4, remote);
  lua_settop(L, 4);
  if (*node < 0) return 0;
  if (*remote) {
    x->epoch++;
    char err[POGO_CODEC_ERRLEN];
    return !lua_isnil(L, 2) && pogo_pg_push_key(L, x, 2, err) == 0;
  }
  return group_key(L, x);
}

/* ix:join(group, pid_or_pids [, node]) -> key, group, joined, fresh
 * joined: the pids that joined (nil if none): the pid itself when a single
 * pid was given, else an array; fresh: those that had no membership in this
 * scope before (local joins only; nil if none; true for a single pid). */
static int ix_join(lua_State *L) {
  pg_ix *x = check_ix(L);
  int remote;
  int64_t node;
  if (!change_args(L, x, &remote, &node)) return lua_gettop(L) - 4;
  const int K = 5, J = 6;
  int single;
  lua_Integer nj = collect_pids(L, x, remote, (uint32_t)node, 1, &single);
  if (nj < 0) return bad_pids(L);
  if (!remote) pogo_pg_walks_save_collected(L, x, J, single, nj);
  if (nj == 0) {
    lua_settop(L, K);
    return 1;
  }
  lua_getiuservalue(L, 1, UV_GROUPS);
  lua_getiuservalue(L, 1, UV_NODES);
  const int G = 7, P = 8;
  pogo_pg_push_node_table(L, P, (uint32_t)node, 1);
  const int NT = 9;
  pogo_pg_push_entry(L, x, G, K, 2, !remote);
  const int E = 10;
  lua_rawgeti(L, E, 1);
  lua_pushnil(L); /* fresh, made on demand */
  const int F = 12;
  for (lua_Integer i = 1; i <= nj; i++) {
    push_collected(L, J, single, i);
    int pid = lua_gettop(L);
    if (pogo_pg_add_member(L, E, NT, pid, K) && !remote) {
      if (single) {
        lua_pushboolean(L, 1);
        lua_replace(L, F);
        lua_pop(L, 1);
        continue;
      }
      if (lua_isnil(L, F)) {
        lua_newtable(L);
        lua_replace(L, F);
      }
      lua_rawseti(L, F, (lua_Integer)lua_rawlen(L, F) + 1);
    } else {
      lua_pop(L, 1);
    }
  }
  lua_pushvalue(L, K);
  lua_pushvalue(L, 11);
  lua_pushvalue(L, J);
  lua_pushvalue(L, F);
  return 4;
}

/* ix:leave(group, pid_or_pids [, node]) -> key, group, left, gone
 * left: the pids that left (nil if none was a member): the pid itself when a
 * single pid was given, else an array; gone: those left with no membership in
 * this scope (nil if none; true for a single pid). */
static int ix_leave(lua_State *L) {
  pg_ix *x = check_ix(L);
  int remote;
  int64_t node;
  if (!change_args(L, x, &remote, &node)) return lua_gettop(L) - 4;
  const int K = 5, J = 6;
  int single;
  lua_Integer nj = collect_pids(L, x, remote, (uint32_t)node, 0, &single);
  if (nj < 0) return bad_pids(L);
  if (!remote) pogo_pg_walks_save_collected(L, x, J, single, nj);
  lua_getiuservalue(L, 1, UV_GROUPS);
  lua_getiuservalue(L, 1, UV_NODES);
  const int G = 7, P = 8;
  pogo_pg_push_node_table(L, P, (uint32_t)node, 0);
  const int NT = 9;
  lua_pushvalue(L, K);
  if (nj == 0 || lua_rawget(L, G) != LUA_TTABLE || !lua_istable(L, NT)) {
    lua_settop(L, K);
    return 1;
  }
  const int E = 10;
  lua_rawgeti(L, E, 1);
  const int GV = 11;
  lua_pushnil(L);
  lua_pushnil(L);
  const int LEFT = 12, GONE = 13;
  for (lua_Integer i = 1; i <= nj; i++) {
    push_collected(L, J, single, i);
    int pid = lua_gettop(L);
    int gone = 0;
    if (single) {
      if (del_member(L, x, G, E, NT, pid, K, &gone)) {
        lua_pushvalue(L, pid);
        lua_replace(L, LEFT);
        if (gone) {
          lua_pushboolean(L, 1);
          lua_replace(L, GONE);
        }
      }
    } else if (del_member(L, x, G, E, NT, pid, K, &gone)) {
      if (lua_isnil(L, LEFT)) { lua_newtable(L); lua_replace(L, LEFT); }
      lua_pushvalue(L, pid);
      lua_rawseti(L, LEFT, (lua_Integer)lua_rawlen(L, LEFT) + 1);
      if (gone) {
        if (lua_isnil(L, GONE)) { lua_newtable(L); lua_replace(L, GONE); }
        lua_pushvalue(L, pid);
        lua_rawseti(L, GONE, (lua_Integer)lua_rawlen(L, GONE) + 1);
      }
    }
    lua_pop(L, 1);
  }
  lua_pushvalue(L, K);
  lua_pushvalue(L, GV);
  lua_pushvalue(L, LEFT);
  lua_pushvalue(L, GONE);
  return 4;
}

/* With a key and its count on top of the stack: the pid at `pid` leaves that
 * group (every membership); an event is added to EV. Pops the count. */
static void leave_all(lua_State *L, pg_ix *x, int G, int EV, int pid) {
  int K = lua_gettop(L) - 1;
  lua_pushvalue(L, K);
  if (lua_rawget(L, G) == LUA_TTABLE) {
    int E = lua_gettop(L);
    lua_rawgeti(L, E, 1);
    lua_createtable(L, (int)lua_tointeger(L, K + 1), 0);
    if (pogo_pg_compact(L, E, pid, 0, E + 2) == 0) pogo_pg_drop_group(L, x, G, K);
    pogo_pg_push_event(L, EV, E + 1, K, 0, E + 2);
  }
  lua_settop(L, K);
}

/* Calls f(L, ud, K, count) for each membership (key at K, count) in the
 * memberships value at idx (a key or a table). */
void pogo_pg_each_membership(lua_State *L, int idx, void (*f)(lua_State *, void *, int, lua_Integer), void *ud) {
  if (lua_type(L, idx) == LUA_TSTRING) {
    f(L, ud, idx, 1);
    return;
  }
  if (!lua_istable(L, idx)) return;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    int K = lua_gettop(L) - 1;
    if (lua_type(L, K) == LUA_TSTRING) f(L, ud, K, lua_tointeger(L, K + 1));
    lua_settop(L, K);
  }
}

static void mark_key(lua_State *L, void *ud, int K, lua_Integer count) {
  (void)count;
  lua_pushvalue(L, K);
  lua_pushboolean(L, 1);
  lua_rawset(L, *(int *)ud);
}

/* ix:remove_pid(pid) -> events | nil: the pid leaves all its groups. */
static int ix_remove_pid(lua_State *L) {
  pg_ix *x = check_ix(L);
  lua_settop(L, 2);
  const pogo_id *pid = pid_at(L, x, 2);
  if (!pid) return 0;
  pogo_id id = *pid;
  if (id.node != 0) x->epoch++;
  else pogo_pg_walks_save(L, x, 2);
  lua_getiuservalue(L, 1, UV_GROUPS);
  lua_getiuservalue(L, 1, UV_NODES);
  const int G = 3, P = 4;
  pogo_pg_push_node_table(L, P, id.node, 0);
  const int NT = 5;
  if (!lua_istable(L, NT)) return 0;
  lua_pushvalue(L, 2);
  int t = lua_rawget(L, NT);
  if (t != LUA_TTABLE && t != LUA_TSTRING) return 0;
  const int PM = 6;
  lua_newtable(L);
  const int EV = 7;
  if (t == LUA_TSTRING) {
    lua_pushvalue(L, PM);
    lua_pushinteger(L, 1);
    leave_all(L, x, G, EV, 2);
  } else {
    lua_pushnil(L);
    while (lua_next(L, PM)) {
      if (lua_type(L, -2) == LUA_TSTRING) leave_all(L, x, G, EV, 2);
      else lua_pop(L, 1);
    }
  }
  lua_pushvalue(L, 2);
  lua_pushnil(L);
  lua_rawset(L, NT);
  lua_pushvalue(L, EV);
  return 1;
}

/* ix:remove_node(name) -> events | nil: every member of that node leaves. */
static int ix_remove_node(lua_State *L) {
  pg_ix *x = check_ix(L);
  int remote;
  int64_t node = pogo_pg_node_arg(x, L, 2, &remote);
  lua_settop(L, 2);
  if (node <= 0) return 0;
  x->epoch++;
  lua_getiuservalue(L, 1, UV_GROUPS);
  lua_getiuservalue(L, 1, UV_NODES);
  const int G = 3, P = 4;
  pogo_pg_push_node_table(L, P, (uint32_t)node, 0);
  const int NT = 5;
  if (!lua_istable(L, NT)) return 0;
  lua_newtable(L);
  const int AFF = 6;
  int aff = AFF;
  lua_pushnil(L);
  while (lua_next(L, NT)) {
    pogo_pg_each_membership(L, lua_gettop(L), mark_key, &aff);
    lua_pop(L, 1);
  }
  lua_newtable(L);
  const int EV = 7;
  lua_pushnil(L);
  while (lua_next(L, AFF)) {
    lua_pop(L, 1);
    int K = lua_gettop(L);
    lua_pushvalue(L, K);
    if (lua_rawget(L, G) != LUA_TTABLE) { lua_pop(L, 1); continue; }
    int E = K + 1;
    lua_rawgeti(L, E, 1);
    lua_newtable(L);
    if (pogo_pg_compact(L, E, 0, (uint32_t)node, E + 2) == 0) pogo_pg_drop_group(L, x, G, K);
    pogo_pg_push_event(L, EV, E + 1, K, 0, E + 2);
    lua_settop(L, K);
  }
  lua_pushnil(L);
  lua_rawseti(L, P, (lua_Integer)node);
  lua_pushvalue(L, EV);
  return 1;
}

/* Push a copy of the members of entry E (those of this node if local_only). */
static void push_members(lua_State *L, int E, int local_only) {
  lua_Integer n = (lua_Integer)lua_rawlen(L, E);
  lua_createtable(L, n > 1 ? (int)(n - 1) : 0, 0);
  lua_Integer k = 0;
  for (lua_Integer i = 2; i <= n; i++) {
    lua_rawgeti(L, E, i);
    if (local_only && pid_node(L, -1) != 0) lua_pop(L, 1);
    else lua_rawseti(L, -2, ++k);
  }
}

/* ix:members(group [, local_only]) -> pids, key (pids is a new array); nil
 * and the reason for a bad group */
static int ix_members(lua_State *L) {
  pg_ix *x = check_ix(L);
  int local_only = lua_toboolean(L, 3);
  lua_settop(L, 2);
  if (!group_key(L, x)) return 2;
  lua_getiuservalue(L, 1, UV_GROUPS);
  lua_pushvalue(L, 3);
  if (lua_rawget(L, 4) != LUA_TTABLE) lua_newtable(L);
  else push_members(L, 5, local_only);
  lua_pushvalue(L, 3);
  return 2;
}

/* ix:key(group) -> canonical key; nil and the reason for a bad group */
static int ix_key(lua_State *L) {
  pg_ix *x = check_ix(L);
  lua_settop(L, 2);
  if (!group_key(L, x)) return 2;
  return 1;
}

/* ix:groups() -> array of every group */
static int ix_groups(lua_State *L) {
  pg_ix *x = check_ix(L);
  lua_settop(L, 1);
  lua_getiuservalue(L, 1, UV_GROUPS);
  lua_createtable(L, x->ngroups > 0 && x->ngroups < (1 << 28) ? (int)x->ngroups : 0, 0);
  lua_Integer k = 0;
  lua_pushnil(L);
  while (lua_next(L, 2)) {
    lua_rawgeti(L, -1, 1);
    lua_rawseti(L, 3, ++k);
    lua_pop(L, 1);
  }
  return 1;
}

/* Push a set (key -> true) of the keys of the groups with local members. */
static void push_local_keys(lua_State *L, int P) {
  lua_newtable(L);
  int S = lua_gettop(L);
  if (lua_rawgeti(L, P, 0) != LUA_TTABLE) { lua_pop(L, 1); return; }
  int NT = S + 1;
  lua_pushnil(L);
  while (lua_next(L, NT)) {
    pogo_pg_each_membership(L, lua_gettop(L), mark_key, &S);
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
}

/* ix:local_groups() -> array of the groups with local members */
static int ix_local_groups(lua_State *L) {
  check_ix(L);
  lua_settop(L, 1);
  lua_getiuservalue(L, 1, UV_GROUPS);
  lua_getiuservalue(L, 1, UV_NODES);
  push_local_keys(L, 3);
  lua_newtable(L);
  lua_Integer k = 0;
  lua_pushnil(L);
  while (lua_next(L, 4)) {
    lua_pop(L, 1);
    lua_pushvalue(L, -1);
    if (lua_rawget(L, 2) == LUA_TTABLE) {
      lua_rawgeti(L, -1, 1);
      lua_rawseti(L, 5, ++k);
    }
    lua_pop(L, 1);
  }
  return 1;
}

/* ix:snapshot([local_only]) -> array of {group, pids} (local members only, and
 * only groups that have some, when local_only) */
static int ix_snapshot(lua_State *L) {
  pg_ix *x = check_ix(L);
  int local_only = lua_toboolean(L, 2);
  lua_settop(L, 1);
  lua_getiuservalue(L, 1, UV_GROUPS);
  const int G = 2;
  if (local_only) {
    lua_getiuservalue(L, 1, UV_NODES);
    push_local_keys(L, 3);
  } else {
    lua_pushnil(L);
    lua_pushvalue(L, G);
  }
  const int KEYS = 4;
  lua_createtable(L, local_only ? 0 : (int)(x->ngroups < (1 << 28) ? x->ngroups : 0), 0);
  const int OUT = 5;
  lua_Integer k = 0;
  lua_pushnil(L);
  while (lua_next(L, KEYS)) {
    lua_pop(L, 1);
    lua_pushvalue(L, -1);
    if (lua_rawget(L, G) == LUA_TTABLE) {
      int E = lua_gettop(L);
      lua_createtable(L, 2, 0);
      lua_rawgeti(L, E, 1);
      lua_rawseti(L, -2, 1);
      push_members(L, E, local_only);
      lua_rawseti(L, -2, 2);
      lua_rawseti(L, OUT, ++k);
    }
    lua_pop(L, 1);
  }
  return 1;
}

/* ix:has_pid(pid) -> whether the pid is a member of some group */
static int ix_has_pid(lua_State *L) {
  pg_ix *x = check_ix(L);
  lua_settop(L, 2);
  const pogo_id *id = pid_at(L, x, 2);
  if (!id) { lua_pushboolean(L, 0); return 1; }
  lua_getiuservalue(L, 1, UV_NODES);
  if (lua_rawgeti(L, 3, id->node) != LUA_TTABLE) { lua_pushboolean(L, 0); return 1; }
  lua_pushvalue(L, 2);
  lua_pushboolean(L, lua_rawget(L, 4) != LUA_TNIL);
  return 1;
}

/* ix:local_pids() -> array of the local pids that are members of some group */
static int ix_local_pids(lua_State *L) {
  check_ix(L);
  lua_settop(L, 1);
  lua_getiuservalue(L, 1, UV_NODES);
  lua_newtable(L);
  if (lua_rawgeti(L, 2, 0) != LUA_TTABLE) { lua_pop(L, 1); return 1; }
  lua_Integer k = 0;
  lua_pushnil(L);
  while (lua_next(L, 4)) {
    lua_pop(L, 1);
    lua_pushvalue(L, -1);
    lua_rawseti(L, 3, ++k);
  }
  lua_settop(L, 3);
  return 1;
}

/* ix:remote_nodes() -> names of the other nodes that have members here */
static int ix_remote_nodes(lua_State *L) {
  pg_ix *x = check_ix(L);
  lua_settop(L, 1);
  lua_getiuservalue(L, 1, UV_NODES);
  lua_newtable(L);
  lua_Integer k = 0;
  lua_pushnil(L);
  while (lua_next(L, 2)) {
    /* node index at 4, its pid table at 5 */
    lua_Integer node = lua_tointeger(L, 4);
    int any = 0;
    if (node > 0 && lua_istable(L, 5)) {
      lua_pushnil(L);
      if (lua_next(L, 5)) {
        any = 1;
        lua_pop(L, 2);
      }
    }
    if (any) {
      lua_pushstring(L, pogo_nodenames_get(x->N, L, (uint32_t)node));
      lua_rawseti(L, 3, ++k);
    }
    lua_settop(L, 4);
  }
  return 1;
}

/* ix:count() -> number of groups */
static int ix_count(lua_State *L) {
  pg_ix *x = check_ix(L);
  lua_pushinteger(L, x->ngroups);
  return 1;
}

static int ix_gc(lua_State *L) {
  pg_ix *x = lua_touserdata(L, 1);
  if (x) msgpack_sbuffer_destroy(&x->sb);
  return 0;
}

/* pg_index() -> a new, empty index */
static int l_pg_index(lua_State *L) {
  pogo_node *N = POGO_NODE(L);
  pg_ix *x = lua_newuserdatauv(L, sizeof *x, 3);
  memset(x, 0, sizeof *x);
  x->N = N;
  luaL_getmetatable(L, "pogo.pid"); /* made by ident.c before any pid exists */
  x->pid_mt = lua_topointer(L, -1);
  lua_pop(L, 1);
  msgpack_sbuffer_init(&x->sb);
  msgpack_packer_init(&x->pk, &x->sb, msgpack_sbuffer_write);
  luaL_setmetatable(L, PG_MT);
  lua_newtable(L);
  lua_setiuservalue(L, -2, UV_GROUPS);
  lua_newtable(L);
  lua_setiuservalue(L, -2, UV_NODES);
  lua_newtable(L);
  lua_setiuservalue(L, -2, UV_WALKS);
  return 1;
}

void pogo_pg_register(lua_State *L) {
  static const luaL_Reg methods[] = {
    {"join", ix_join}, {"leave", ix_leave}, {"remove_pid", ix_remove_pid},
    {"remove_node", ix_remove_node}, {"members", ix_members}, {"key", ix_key},
    {"groups", ix_groups}, {"local_groups", ix_local_groups}, {"snapshot", ix_snapshot},
    {"has_pid", ix_has_pid}, {"local_pids", ix_local_pids}, {"remote_nodes", ix_remote_nodes},
    {"count", ix_count}, {NULL, NULL}};
  const luaL_Reg *const sets[] = {methods, pogo_pg_sync_methods, pogo_pg_walk_methods};
  if (luaL_newmetatable(L, PG_MT)) {
    lua_newtable(L);
    for (size_t i = 0; i < sizeof sets / sizeof *sets; i++) {
      lua_pushvalue(L, -2);
      luaL_setfuncs(L, sets[i], 1); /* upvalue: the metatable, for check_ix */
    }
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, ix_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  static const luaL_Reg fns[] = {{"pg_index", l_pg_index}, {NULL, NULL}};
  pogo_node_setfuncs(L, fns);
}