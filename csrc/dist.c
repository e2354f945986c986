/*
 * dist.c: remote pids when no peer is connected (contract in dist.h).
 * The transport replaces these with real links; without one every remote
 * node is unreachable.
 */
#include "dist.h"
#include "node.h"

int pogo_dist_send(pogo_node *N, lua_State *L, const pogo_id *to, int msg_idx, char err[POGO_CODEC_ERRLEN]) {
  (void)N; (void)L; (void)to; (void)msg_idx; (void)err;
  return 0; /* dropped: not connected */
}

int pogo_dist_send_named(pogo_node *N, lua_State *L, uint32_t node, int name_idx, int msg_idx,
                         char err[POGO_CODEC_ERRLEN]) {
  (void)N; (void)L; (void)node; (void)name_idx; (void)msg_idx; (void)err;
  return 0;
}

void pogo_dist_link(pogo_node *N, lua_State *L, const pogo_id *from, const pogo_id *to) {
  pogo_proc *p = pogo_proc_get(N, from);
  if (!p) return;
  pogo_idset_remove(&p->links, to);
  lua_pushliteral(L, "noconnection");
  pogo_signal_exit(N, L, p, to, -1, 1);
  lua_pop(L, 1);
}

void pogo_dist_unlink(pogo_node *N, lua_State *L, const pogo_id *from, const pogo_id *to) {
  (void)N; (void)L; (void)from; (void)to;
}

void pogo_dist_exit(pogo_node *N, lua_State *L, const pogo_id *from, const pogo_id *to, int reason_idx, int linked) {
  (void)N; (void)L; (void)from; (void)to; (void)reason_idx; (void)linked;
}

void pogo_dist_monitor(pogo_node *N, lua_State *L, const pogo_id *watcher, uint64_t ref, const pogo_id *target) {
  pogo_proc *w = pogo_proc_get(N, watcher);
  if (w) pogo_monset_remove(&w->watching, ref, NULL);
  lua_pushliteral(L, "noconnection");
  pogo_send_down(N, L, watcher, ref, target, -1);
  lua_pop(L, 1);
}

void pogo_dist_demonitor(pogo_node *N, lua_State *L, const pogo_id *watcher, uint64_t ref, const pogo_id *target) {
  (void)N; (void)L; (void)watcher; (void)ref; (void)target;
}

void pogo_dist_down(pogo_node *N, lua_State *L, const pogo_id *watcher, uint64_t ref, const pogo_id *who, int reason_idx) {
  (void)N; (void)L; (void)watcher; (void)ref; (void)who; (void)reason_idx;
}

void pogo_node_dist_close(struct pogo_node *N, lua_State *L) { (void)N; (void)L; }
