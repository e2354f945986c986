/*
 * links.c: links, monitors and exit signals, with Erlang's semantics.
 *
 * Contract
 * - Links are symmetric sets of pids; monitors are one-way, named by a ref and
 *   recorded on both sides (watching / watchers) so either end cleans up in O(1)
 *   amortised.
 * - An exit signal from `from` with reason R to process P:
 *     R == "kill" sent with exit(pid, "kill")  -> P exits with "killed" (untrappable)
 *     P traps exits                            -> P gets {"EXIT", from, R}
 *     R == "normal"                            -> ignored (unless P signals itself)
 *     otherwise                                -> P exits with R
 *   The main chunk's process always traps.
 * - A monitor on a process that does not exist gives {"DOWN", ref, pid, "noproc"}
 *   at once. demonitor(ref) also removes a DOWN for ref already in the mailbox.
 *   A monitor of {"via", module, name} (via.c) monitors the process the name
 *   gives now; nothing: {"DOWN", ref, {"via", module, name}, "noproc"} at once.
 * - Links and monitors across nodes: the local side is recorded here, the
 *   other node is told through remote.h (which applies "noconnection" when it
 *   is not connected). What a peer does to local processes arrives through
 *   pogo_links_peer_*, with the same semantics; monitors from another node are
 *   recorded by (ref, watcher), since refs of different nodes may share a
 *   serial.
 * - When a node goes (pogo_links_node_down, called by the transport), every
 *   local process's links to it get the exit signal "noconnection", its
 *   monitors of processes there fire {"DOWN", ref, pid | {name, node},
 *   "noconnection"}, and monitors held from there are dropped. The sets are
 *   cleared of that node first and the signals sent after, since a signal may
 *   end a process and change other sets.
 */
#include <stdlib.h>
#include <string.h>

#include "runtime.h"
#include "remote.h"

static void push_exit(pogo_node *N, lua_State *L, const pogo_id *from, int reason_idx) {
  lua_createtable(L, 3, 0);
  lua_pushliteral(L, "EXIT");
  lua_rawseti(L, -2, 1);
  pogo_ident_push(N, L, from);
  lua_rawseti(L, -2, 2);
  lua_pushvalue(L, reason_idx);
  lua_rawseti(L, -2, 3);
}

void pogo_links_signal_exit(pogo_node *N, lua_State *L, pogo_proc *p, const pogo_id *from, int reason_idx, int linked) {
  reason_idx = lua_absindex(L, reason_idx);
  lua_checkstack(L, 8);
  int is_str = lua_type(L, reason_idx) == LUA_TSTRING;
  const char *r = is_str ? lua_tostring(L, reason_idx) : NULL;
  if (!linked && r && strcmp(r, "kill") == 0 && !(p->flags & PF_EXTERNAL)) {
    lua_pushliteral(L, "killed");
    pogo_proc_kill(N, L, p, -1);
    lua_pop(L, 1);
    return;
  }
  if (p->flags & PF_TRAP_EXIT) {
    push_exit(N, L, from, reason_idx);
    pogo_mailbox_deliver(N, L, p, -1);
    lua_pop(L, 1);
    return;
  }
  if (r && strcmp(r, "normal") == 0) {
    if (!linked && from->node == 0 && from->serial == p->serial) pogo_proc_kill(N, L, p, reason_idx);
    return;
  }
  pogo_proc_kill(N, L, p, reason_idx);
}

void pogo_links_send_down(pogo_node *N, lua_State *L, const pogo_id *watcher, uint64_t ref, const pogo_id *who,
                          int reason_idx) {
  reason_idx = lua_absindex(L, reason_idx);
  if (watcher->node != 0) {
    pogo_remote_down(N, L, watcher, ref, who, reason_idx);
    return;
  }
  pogo_proc *w = pogo_proc_get(N, watcher);
  if (!w) return;
  pogo_monset_remove(&w->watching, ref, NULL);
  lua_checkstack(L, 8);
  pogo_ident_push(N, L, who);
  pogo_links_deliver_down(N, L, w, ref, -1, reason_idx);
  lua_pop(L, 1);
}

void pogo_links_deliver_down(pogo_node *N, lua_State *L, pogo_proc *w, uint64_t ref, int who_idx, int reason_idx) {
  who_idx = lua_absindex(L, who_idx);
  reason_idx = lua_absindex(L, reason_idx);
  lua_checkstack(L, 4);
  pogo_id rid = {.serial = ref, .node = 0, .creation = N->creation, .slot = 0, .kind = POGO_KIND_REF};
  lua_createtable(L, 4, 0);
  lua_pushliteral(L, "DOWN");
  lua_rawseti(L, -2, 1);
  pogo_ident_push(N, L, &rid);
  lua_rawseti(L, -2, 2);
  lua_pushvalue(L, who_idx);
  lua_rawseti(L, -2, 3);
  lua_pushvalue(L, reason_idx);
  lua_rawseti(L, -2, 4);
  pogo_mailbox_deliver(N, L, w, -1);
  lua_pop(L, 1);
}

void pogo_links_remote_down(pogo_node *N, lua_State *L, pogo_proc *w, uint64_t ref, const pogo_id *who,
                            int reason_idx) {
  reason_idx = lua_absindex(L, reason_idx);
  lua_checkstack(L, 8);
  if (who->serial != 0 || !pogo_remote_take_name(N, L, ref)) pogo_ident_push(N, L, who);
  pogo_links_deliver_down(N, L, w, ref, -1, reason_idx);
  lua_pop(L, 1);
}

/* ---- what processes on other nodes do to local ones ---- */

int pogo_links_peer_link(pogo_node *N, const pogo_id *from, const pogo_id *to) {
  pogo_proc *p = pogo_proc_get(N, to);
  if (!p) return 0;
  pogo_idset_add(&p->links, from);
  return 1;
}

void pogo_links_peer_unlink(pogo_node *N, const pogo_id *from, const pogo_id *to) {
  pogo_proc *p = pogo_proc_get(N, to);
  if (p) pogo_idset_remove(&p->links, from);
}

void pogo_links_peer_exit(pogo_node *N, lua_State *L, const pogo_id *from, const pogo_id *to, int reason_idx,
                          int linked) {
  pogo_proc *p = pogo_proc_get(N, to);
  if (!p) return;
  if (!linked) pogo_links_signal_exit(N, L, p, from, reason_idx, 0);
  else if (pogo_idset_remove(&p->links, from)) pogo_links_signal_exit(N, L, p, from, reason_idx, 1);
}

int pogo_links_peer_monitor(pogo_node *N, const pogo_id *watcher, uint64_t ref, const pogo_id *target) {
  pogo_proc *p = pogo_proc_get(N, target);
  if (!p) return 0;
  pogo_monset_add(&p->watchers, ref, watcher);
  return 1;
}

void pogo_links_peer_demonitor(pogo_node *N, const pogo_id *watcher, uint64_t ref, const pogo_id *target) {
  pogo_proc *p = pogo_proc_get(N, target);
  if (p) pogo_monset_remove_pair(&p->watchers, ref, watcher);
}

void pogo_links_peer_down(pogo_node *N, lua_State *L, const pogo_id *watcher, uint64_t ref, uint32_t node,
                          const pogo_id *who, int reason_idx) {
  pogo_proc *p = pogo_proc_get(N, watcher);
  pogo_mon mon;
  if (!p || !pogo_monset_remove(&p->watching, ref, &mon)) return;
  if (mon.other.node != node) { /* not a monitor on that node: put it back */
    pogo_monset_add(&p->watching, mon.ref, &mon.other);
    return;
  }
  pogo_links_remote_down(N, L, p, ref, mon.other.serial == 0 ? &mon.other : who, reason_idx);
}

typedef struct fanout {
  uint32_t slot;
  uint64_t serial;
  int down; /* 1 DOWN to the watcher, 0 exit signal over a link */
  uint64_t ref;
  pogo_id other;
} fanout;

void pogo_links_node_down(pogo_node *N, lua_State *L, uint32_t node) {
  int top = lua_gettop(L);
  lua_checkstack(L, 12);
  /* first take every entry about that node out of every set, then act: the
   * signals and DOWNs below may change the sets */
  fanout *acts = NULL;
  size_t nact = 0, cap = 0;
  for (uint32_t s = 1; s <= N->nslots; s++) {
    pogo_proc *p = N->procs[s];
    if (!p || p->state == PS_EXITING) continue;
    for (int set = 0; set < 3; set++) {
      /* 0: links, 1: watching (our monitors there), 2: watchers (theirs here) */
      uint32_t n = set == 0 ? p->links.n : set == 1 ? p->watching.n : p->watchers.n;
      for (uint32_t i = n; i-- > 0;) {
        pogo_id other = set == 0 ? p->links.v[i] : set == 1 ? p->watching.v[i].other : p->watchers.v[i].other;
        if (other.node != node) continue;
        if (set < 2) {
          if (nact == cap) {
            size_t nc = cap ? cap * 2 : 16;
            fanout *na = realloc(acts, nc * sizeof *na);
            if (!na) continue; /* out of memory: this one is lost */
            acts = na;
            cap = nc;
          }
          fanout *f = &acts[nact++];
          f->slot = p->slot;
          f->serial = p->serial;
          f->down = set == 1;
          f->ref = set == 1 ? p->watching.v[i].ref : 0;
          f->other = other;
        }
        if (set == 0) pogo_idset_remove_at(&p->links, i);
        else if (set == 1) pogo_monset_remove_at(&p->watching, i);
        else pogo_monset_remove_at(&p->watchers, i);
      }
    }
  }
  lua_pushliteral(L, "noconnection");
  int why = lua_gettop(L);
  for (size_t i = 0; i < nact; i++) {
    fanout *f = &acts[i];
    pogo_proc *p = f->slot <= N->nslots ? N->procs[f->slot] : NULL;
    if (!p || p->serial != f->serial || p->state == PS_EXITING) continue;
    if (f->down) pogo_links_remote_down(N, L, p, f->ref, &f->other, why);
    else pogo_links_signal_exit(N, L, p, &f->other, why, 1);
  }
  free(acts);
  lua_settop(L, top);
}

/* After an operation that may have killed the caller: stop it now if possible. */
static int finish_call(pogo_node *N, lua_State *L, int nret) {
  pogo_proc *p = N->current;
  if (p && (p->flags & PF_PENDING_EXIT) && p->co == L && lua_isyieldable(L)) return lua_yield(L, 0);
  return nret;
}

/* link(pid) */
static int l_link(lua_State *L) {
  pogo_node *N = POGO_NODE(L);
  pogo_id id, me;
  if (!pogo_ident_is_pid(L, 1, &id)) return luaL_argerror(L, 1, "pid expected");
  pogo_proc *p = pogo_proc_current(N, L, NULL);
  pogo_proc_id(N, p, &me);
  if (pogo_id_eq(&id, &me)) return 0;
  if (id.node != 0) {
    if (pogo_idset_add(&p->links, &id) > 0) pogo_remote_link(N, L, &me, &id);
    return finish_call(N, L, 0);
  }
  pogo_proc *q = pogo_proc_get(N, &id);
  if (!q) {
    if (p->flags & PF_TRAP_EXIT) {
      lua_pushliteral(L, "noproc");
      pogo_links_signal_exit(N, L, p, &id, -1, 1);
      return 0;
    }
    return luaL_error(L, "noproc: cannot link to %s", luaL_tolstring(L, 1, NULL));
  }
  pogo_idset_add(&p->links, &id);
  pogo_idset_add(&q->links, &me);
  return 0;
}

/* unlink(pid) */
static int l_unlink(lua_State *L) {
  pogo_node *N = POGO_NODE(L);
  pogo_id id, me;
  if (!pogo_ident_is_pid(L, 1, &id)) return luaL_argerror(L, 1, "pid expected");
  pogo_proc *p = pogo_proc_current(N, L, NULL);
  pogo_proc_id(N, p, &me);
  if (pogo_idset_remove(&p->links, &id) && id.node != 0) pogo_remote_unlink(N, L, &me, &id);
  pogo_proc *q = pogo_proc_get(N, &id);
  if (q) pogo_idset_remove(&q->links, &me);
  return 0;
}

/* unlink_pair(a, b): remove the link between two local processes, neither of
 * which need be the caller; a pid that is not local or not alive is left
 * alone. The orderly stop uses it (shutdown.lua): a root of a supervision tree
 * is unlinked from the process outside the trees that started it (the script),
 * so that the root's exit does not end that process, whose exit would stop the
 * other roots out of order. */
static int l_unlink_pair(lua_State *L) {
  pogo_node *N = POGO_NODE(L);
  pogo_id a, b;
  if (!pogo_ident_is_pid(L, 1, &a)) return luaL_argerror(L, 1, "pid expected");
  if (!pogo_ident_is_pid(L, 2, &b)) return luaL_argerror(L, 2, "pid expected");
  if (a.node != 0 || b.node != 0) return 0;
  pogo_proc *p = pogo_proc_get(N, &a);
  pogo_proc *q = pogo_proc_get(N, &b);
  if (p) pogo_idset_remove(&p->links, &b);
  if (q) pogo_idset_remove(&q->links, &a);
  return 0;
}

/* monitor(pid | registered name | {name, node}) -> ref */
static int l_monitor(lua_State *L) {
  pogo_node *N = POGO_NODE(L);
  pogo_id id, me;
  pogo_proc *p = pogo_proc_current(N, L, NULL);
  pogo_proc_id(N, p, &me);
  pogo_id ref = {.serial = N->next_ref++, .node = 0, .creation = N->creation, .slot = 0, .kind = POGO_KIND_REF};
  if (pogo_via_is(L, 1)) {
    /* {"via", module, name}: the process it names now (see via.c) */
    lua_settop(L, 1);
    pogo_via_whereis(L, 1);
    if (lua_isnil(L, 2)) {
      lua_pushliteral(L, "noproc");
      pogo_links_deliver_down(N, L, p, ref.serial, 1, -1);
      pogo_ident_push(N, L, &ref);
      return 1;
    }
    lua_replace(L, 1);
  }
  if (lua_type(L, 1) == LUA_TTABLE && !pogo_ident_is_pid(L, 1, NULL)) {
    /* {name, node}: a name on this node, or a remote monitor by name */
    lua_settop(L, 1);
    lua_rawgeti(L, 1, 1);
    lua_rawgeti(L, 1, 2);
    if (lua_type(L, 2) != LUA_TSTRING || lua_type(L, 3) != LUA_TSTRING)
      return luaL_argerror(L, 1, "{name, node} expects two strings");
    size_t nl;
    const char *node = lua_tolstring(L, 3, &nl);
    uint32_t idx = pogo_nodenames_index(N, L, node, nl);
    if (idx != 0) {
      pogo_id target = {.serial = 0, .node = idx, .creation = 0, .slot = 0, .kind = POGO_KIND_PID};
      pogo_monset_add(&p->watching, ref.serial, &target);
      pogo_remote_monitor_name(N, L, &me, ref.serial, idx, 2);
      pogo_ident_push(N, L, &ref);
      return 1;
    }
    lua_pop(L, 1); /* the node is this one: monitor the name */
    lua_replace(L, 1);
  }
  if (lua_type(L, 1) == LUA_TSTRING) {
    pogo_node_push_ref(L, N->ref_names);
    lua_pushvalue(L, 1);
    lua_rawget(L, -2);
    if (!pogo_ident_is_pid(L, -1, &id)) {
      /* unknown name: DOWN at once, naming the name */
      lua_pushliteral(L, "noproc");
      pogo_links_deliver_down(N, L, p, ref.serial, 1, -1);
      pogo_ident_push(N, L, &ref);
      return 1;
    }
  } else if (!pogo_ident_is_pid(L, 1, &id)) {
    return luaL_argerror(L, 1, "pid or registered name expected");
  }
  if (id.node != 0) {
    pogo_monset_add(&p->watching, ref.serial, &id);
    pogo_remote_monitor(N, L, &me, ref.serial, &id);
    pogo_ident_push(N, L, &ref);
    return 1;
  }
  pogo_proc *q = pogo_proc_get(N, &id);
  if (!q) {
    lua_pushliteral(L, "noproc");
    pogo_links_send_down(N, L, &me, ref.serial, &id, -1);
  } else {
    pogo_monset_add(&p->watching, ref.serial, &id);
    pogo_monset_add(&q->watchers, ref.serial, &me);
  }
  pogo_ident_push(N, L, &ref);
  return 1;
}

/* demonitor(ref) -> true if the monitor was active (a pending DOWN is flushed by the caller) */
static int l_demonitor(lua_State *L) {
  pogo_node *N = POGO_NODE(L);
  pogo_id ref, me;
  if (!pogo_ident_get(L, 1, &ref) || ref.kind != POGO_KIND_REF) return luaL_argerror(L, 1, "ref expected");
  pogo_proc *p = pogo_proc_current(N, L, NULL);
  pogo_proc_id(N, p, &me);
  pogo_mon m;
  if (ref.node != 0 || ref.creation != N->creation || !pogo_monset_remove(&p->watching, ref.serial, &m)) {
    lua_pushboolean(L, 0);
    return 1;
  }
  if (m.other.node != 0) {
    pogo_remote_demonitor(N, L, &me, ref.serial, &m.other);
  } else {
    pogo_proc *q = pogo_proc_get(N, &m.other);
    if (q) pogo_monset_remove_pair(&q->watchers, ref.serial, &me);
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* trap_exit(flag) -> previous flag */
static int l_trap_exit(lua_State *L) {
  pogo_node *N = POGO_NODE(L);
  pogo_proc *p = pogo_proc_current(N, L, NULL);
  int old = (p->flags & PF_TRAP_EXIT) != 0;
  if (!lua_isnoneornil(L, 1) && !(p->flags & PF_EXTERNAL)) {
    if (lua_toboolean(L, 1)) p->flags |= PF_TRAP_EXIT;
    else p->flags &= (uint16_t)~PF_TRAP_EXIT;
  }
  lua_pushboolean(L, old);
  return 1;
}

/* exit_signal(pid, reason): send an exit signal */
static int l_exit_signal(lua_State *L) {
  pogo_node *N = POGO_NODE(L);
  pogo_id id, me;
  if (!pogo_ident_is_pid(L, 1, &id)) return luaL_argerror(L, 1, "pid expected");
  luaL_checkany(L, 2);
  lua_settop(L, 2);
  pogo_proc *p = pogo_proc_current(N, L, NULL);
  pogo_proc_id(N, p, &me);
  if (id.node != 0) {
    pogo_remote_exit(N, L, &me, &id, 2, 0);
    return 0;
  }
  pogo_proc *q = pogo_proc_get(N, &id);
  if (q) pogo_links_signal_exit(N, L, q, &me, 2, 0);
  return finish_call(N, L, 0);
}

/* exit_self(reason): end the calling process with reason (not the main chunk) */
static int l_exit_self(lua_State *L) {
  pogo_node *N = POGO_NODE(L);
  luaL_checkany(L, 1);
  lua_settop(L, 1);
  pogo_proc *p = N->current;
  if (!p) return luaL_error(L, "pogo.exit: the main chunk is not a process (use os.exit, or exit(pid, reason))");
  if (lua_type(L, 1) == LUA_TSTRING && strcmp(lua_tostring(L, 1), "kill") == 0) {
    lua_pushliteral(L, "killed");
    lua_replace(L, 1);
  }
  pogo_proc_kill(N, L, p, 1); /* p is running: recorded as pending */
  if (p->co == L && lua_isyieldable(L)) return lua_yield(L, 0);
  return luaL_error(L, "pogo.exit: process is exiting");
}

void pogo_links_register(lua_State *L) {
  static const luaL_Reg fns[] = {
    {"link", l_link}, {"unlink", l_unlink}, {"unlink_pair", l_unlink_pair},
    {"monitor", l_monitor}, {"demonitor", l_demonitor},
    {"trap_exit", l_trap_exit}, {"exit_signal", l_exit_signal}, {"exit_self", l_exit_self}, {NULL, NULL}};
  pogo_node_setfuncs(L, fns);
}
