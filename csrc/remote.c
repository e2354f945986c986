/*
 * remote.c: the runtime's side of remote.h: every operation on a process of
 * another node goes through the node's ops table, and this file alone decides
 * what happens when that node is not connected (or no transport runs): the
 * message is dropped once it is known to be serializable, a link gets the exit
 * signal "noconnection", a monitor fires {"DOWN", ref, pid | {name, node},
 * "noconnection"}, the rest does nothing. It also keeps the {name, node} of
 * each monitor by name (N->ref_namemon) for its DOWN message.
 */
#include <stdio.h>

#include "runtime.h"
#include "remote.h"

void pogo_remote_set(pogo_node *N, const pogo_remote_ops *ops, void *ctx) {
  N->remote = ops;
  N->remote_ctx = ops ? ctx : NULL;
}

/* ---- messages ---- */

static int null_write(void *data, const char *buf, size_t len) {
  (void)data;
  (void)buf;
  (void)len;
  return 0;
}

/* The op's answer as pogo_remote_send's; not connected: the message is
 * dropped, but it must still be serializable. */
static int sent(pogo_node *N, lua_State *L, int r, int msg_idx, char err[POGO_CODEC_ERRLEN]) {
  if (r == POGO_REMOTE_OK) return 0;
  if (r == POGO_REMOTE_SUSPENDED) return 1;
  if (r == POGO_REMOTE_ERROR) return -1;
  msgpack_packer pk;
  msgpack_packer_init(&pk, NULL, null_write);
  return pogo_codec_encode_msg(L, msg_idx, &pk, &N->ext, "msg", 0, err) == 0 ? 0 : -1;
}

int pogo_remote_send(pogo_node *N, lua_State *L, const pogo_id *to, int msg_idx, char err[POGO_CODEC_ERRLEN]) {
  int r = N->remote ? N->remote->send(N->remote_ctx, L, to, msg_idx, err) : POGO_REMOTE_NOCONN;
  return sent(N, L, r, msg_idx, err);
}

int pogo_remote_send_named(pogo_node *N, lua_State *L, uint32_t node, int name_idx, int msg_idx,
                           char err[POGO_CODEC_ERRLEN]) {
  size_t nl;
  const char *name = lua_tolstring(L, name_idx, &nl);
  if (!name || nl == 0 || nl > POGO_REMOTE_NAME_MAX) {
    snprintf(err, POGO_CODEC_ERRLEN, "registered names are 1 to %d bytes long", POGO_REMOTE_NAME_MAX);
    return -1;
  }
  int r = N->remote ? N->remote->send_named(N->remote_ctx, L, node, name, nl, msg_idx, err) : POGO_REMOTE_NOCONN;
  return sent(N, L, r, msg_idx, err);
}

/* ---- links and exit signals ---- */

void pogo_remote_link(pogo_node *N, lua_State *L, const pogo_id *from, const pogo_id *to) {
  if (N->remote && N->remote->link(N->remote_ctx, L, from, to) == POGO_REMOTE_OK) return;
  pogo_proc *p = pogo_proc_get(N, from);
  if (!p) return;
  pogo_idset_remove(&p->links, to);
  lua_pushliteral(L, "noconnection");
  pogo_links_signal_exit(N, L, p, to, -1, 1);
  lua_pop(L, 1);
}

void pogo_remote_unlink(pogo_node *N, lua_State *L, const pogo_id *from, const pogo_id *to) {
  if (N->remote) N->remote->unlink(N->remote_ctx, L, from, to);
}

void pogo_remote_exit(pogo_node *N, lua_State *L, const pogo_id *from, const pogo_id *to, int reason_idx,
                      int linked) {
  if (N->remote) N->remote->exit(N->remote_ctx, L, from, to, reason_idx, linked);
}

/* ---- monitors ---- */

int pogo_remote_take_name(pogo_node *N, lua_State *L, uint64_t ref) {
  lua_checkstack(L, 4);
  pogo_node_push_ref(L, N->ref_namemon);
  lua_pushinteger(L, (lua_Integer)ref);
  if (lua_rawget(L, -2) != LUA_TTABLE) {
    lua_pop(L, 2);
    return 0;
  }
  lua_pushinteger(L, (lua_Integer)ref);
  lua_pushnil(L);
  lua_rawset(L, -4);
  lua_remove(L, -2);
  return 1;
}

/* Not connected: w's monitor ref of `target` fires "noconnection" at once. */
static void down_noconnection(pogo_node *N, lua_State *L, const pogo_id *watcher, uint64_t ref,
                              const pogo_id *target) {
  pogo_proc *w = pogo_proc_get(N, watcher);
  if (!w) {
    if (target->serial == 0 && pogo_remote_take_name(N, L, ref)) lua_pop(L, 1);
    return;
  }
  pogo_monset_remove(&w->watching, ref, NULL);
  lua_pushliteral(L, "noconnection");
  pogo_links_remote_down(N, L, w, ref, target, -1);
  lua_pop(L, 1);
}

void pogo_remote_monitor(pogo_node *N, lua_State *L, const pogo_id *watcher, uint64_t ref, const pogo_id *target) {
  if (N->remote && N->remote->monitor(N->remote_ctx, L, watcher, ref, target) == POGO_REMOTE_OK) return;
  down_noconnection(N, L, watcher, ref, target);
}

void pogo_remote_monitor_name(pogo_node *N, lua_State *L, const pogo_id *watcher, uint64_t ref, uint32_t node,
                              int name_idx) {
  name_idx = lua_absindex(L, name_idx);
  lua_checkstack(L, 6);
  /* remember {name, node} for the DOWN message */
  pogo_node_push_ref(L, N->ref_namemon);
  lua_pushinteger(L, (lua_Integer)ref);
  lua_createtable(L, 2, 0);
  lua_pushvalue(L, name_idx);
  lua_rawseti(L, -2, 1);
  lua_pushstring(L, pogo_nodenames_get(N, L, node));
  lua_rawseti(L, -2, 2);
  lua_rawset(L, -3);
  lua_pop(L, 1);
  size_t nl;
  const char *name = lua_tolstring(L, name_idx, &nl);
  if (N->remote && name && nl >= 1 && nl <= POGO_REMOTE_NAME_MAX &&
      N->remote->monitor_name(N->remote_ctx, L, watcher, ref, node, name, nl) == POGO_REMOTE_OK)
    return;
  pogo_id placeholder = {.serial = 0, .node = node, .creation = 0, .slot = 0, .kind = POGO_KIND_PID};
  down_noconnection(N, L, watcher, ref, &placeholder);
}

void pogo_remote_demonitor(pogo_node *N, lua_State *L, const pogo_id *watcher, uint64_t ref, const pogo_id *target) {
  if (target->serial != 0) {
    if (N->remote) N->remote->demonitor(N->remote_ctx, L, watcher, ref, target);
    return;
  }
  int top = lua_gettop(L);
  if (pogo_remote_take_name(N, L, ref) && N->remote) {
    lua_rawgeti(L, -1, 1);
    size_t nl;
    const char *name = lua_tolstring(L, -1, &nl);
    if (name && nl >= 1 && nl <= POGO_REMOTE_NAME_MAX)
      N->remote->demonitor_name(N->remote_ctx, L, watcher, ref, target->node, name, nl);
  }
  lua_settop(L, top);
}

void pogo_remote_down(pogo_node *N, lua_State *L, const pogo_id *watcher, uint64_t ref, const pogo_id *who,
                      int reason_idx) {
  if (N->remote) N->remote->down(N->remote_ctx, L, watcher, ref, who, reason_idx);
}

void pogo_remote_close(pogo_node *N, lua_State *L) {
  const pogo_remote_ops *ops = N->remote;
  void *ctx = N->remote_ctx;
  pogo_remote_set(N, NULL, NULL);
  if (ops) ops->close(ctx, L);
}
