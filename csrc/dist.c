/*
 * dist.c: remote processes over the mesh (contract in dist.h), what happens
 * to local processes when a node goes down, and the Lua-facing node
 * functions (core.dist_*, wrapped by lua/pogo/dist.lua).
 *
 * Contract
 * - Sends, links, exits and monitors to a remote pid become one frame each
 *   (wire.h) on the link to its node; frames from a peer are applied to local
 *   processes with the same semantics as local operations (links.c).
 *   Anything a peer sends that does not decode closes that link only.
 * - On nodedown every local process's links to that node get the exit signal
 *   "noconnection", its monitors of processes there fire
 *   {"DOWN", ref, pid, "noconnection"}, and monitors held from there are
 *   dropped; then monitor_nodes subscribers get {"nodedown", node, reason}.
 * - Remote monitors are recorded on the target's side by (ref, watcher): refs
 *   made by different nodes may have equal serials.
 * - Exit reasons that cannot be serialized cross as their tostring(); crash
 *   reasons ({error=, traceback=}) get their metatable back on arrival.
 */
#include <stdlib.h>
#include <string.h>
#include <luv.h>

#include "dist.h"
#include "dist_int.h"
#include "node.h"

/* ---- ids ---- */

static void wire_of(const pogo_id *id, pogo_wire_id *w) {
  w->creation = id->creation;
  w->serial = id->serial;
  w->slot = id->slot;
}

static void id_of(uint32_t node, const pogo_wire_id *w, pogo_id *out) {
  out->serial = w->serial;
  out->node = node;
  out->creation = w->creation;
  out->slot = w->slot;
  out->kind = POGO_KIND_PID;
}

static pogo_link *link_to(pogo_node *N, uint32_t node) {
  pogo_dist *d = N->dist;
  if (!d || d->stopping) return NULL;
  pogo_link *l = pogo_mesh_up(d, node);
  return l && l->state == LS_UP ? l : NULL;
}

/* ---- sending ---- */

static int null_write(void *data, const char *buf, size_t len) {
  (void)data;
  (void)buf;
  (void)len;
  return 0;
}

/* No link: the message is dropped, but it must still be serializable. */
static int check_only(pogo_node *N, lua_State *L, int msg_idx, char err[POGO_CODEC_ERRLEN]) {
  msgpack_packer pk;
  msgpack_packer_init(&pk, NULL, null_write);
  return pogo_codec_encode(L, msg_idx, &pk, &N->ext, "msg", err) == 0 ? 0 : -1;
}

static size_t begin(pogo_link *l, uint8_t kind, size_t hint, char err[POGO_CODEC_ERRLEN]) {
  size_t s = pogo_link_begin(l, kind, hint);
  if (s == (size_t)-1 && err) snprintf(err, POGO_CODEC_ERRLEN, "out of memory");
  return s;
}

static int end(pogo_link *l, size_t start, char err[POGO_CODEC_ERRLEN]) {
  size_t size = l->out.len - start - POGO_FRAME_HDR;
  if (pogo_link_end(l, start) == 0) return 0;
  if (err)
    snprintf(err, POGO_CODEC_ERRLEN, "msg: too large to be sent (%zu bytes, the peer accepts %u)", size,
             (unsigned)l->peer_max_frame);
  return -1;
}

/* How the caller can wait for a busy link: 1 yield (a process), 2 drive the
 * loop (the main chunk), 0 it cannot (a luv callback). */
static int wait_mode(pogo_node *N, lua_State *L) {
  if (N->current) return N->current->co == L && lua_isyieldable(L) ? 1 : 0;
  if (N->driving) return 0;
  luv_ctx_t *ctx = luv_context(L);
  if (ctx && ctx->mode != -1) return 0;
  return 2;
}

static int after_send(pogo_node *N, lua_State *L, pogo_link *l) {
  if (pogo_link_backlog(l) < POGO_BUSY_HIGH) return 0;
  int mode = wait_mode(N, L);
  if (mode == 1) {
    pogo_proc *p = N->current;
    if (pogo_link_add_busy(l, p) != 0) return 0;
    p->state = PS_SLEEPING;
    p->resume = RK_NONE;
    pogo_link_flush(l);
    return 1;
  }
  if (mode == 2) {
    uint32_t node = l->peer;
    pogo_link_flush(l);
    N->driving++;
    for (;;) {
      pogo_link *u = link_to(N, node);
      if (!u || pogo_link_backlog(u) < POGO_BUSY_LOW) break;
      uv_run(N->loop, UV_RUN_ONCE);
    }
    N->driving--;
  }
  return 0;
}

int pogo_dist_send(pogo_node *N, lua_State *L, const pogo_id *to, int msg_idx, char err[POGO_CODEC_ERRLEN]) {
  pogo_link *l = link_to(N, to->node);
  if (!l) return check_only(N, L, msg_idx, err);
  size_t start = begin(l, POGO_W_SEND, POGO_WIRE_ID + 16, err);
  if (start == (size_t)-1) return -1;
  pogo_wire_id w;
  wire_of(to, &w);
  pogo_wire_put_id(&l->out, &w);
  if (pogo_codec_encode(L, msg_idx, &l->pk, &N->ext, "msg", err) != 0) {
    pogo_link_cancel(l, start);
    return -1;
  }
  if (end(l, start, err) != 0) return -1;
  return after_send(N, L, l);
}

int pogo_dist_send_named(pogo_node *N, lua_State *L, uint32_t node, int name_idx, int msg_idx,
                         char err[POGO_CODEC_ERRLEN]) {
  size_t nl;
  const char *name = lua_tolstring(L, name_idx, &nl);
  if (!name || nl == 0 || nl > POGO_WIRE_NAME_MAX) {
    snprintf(err, POGO_CODEC_ERRLEN, "registered names are 1 to %d bytes long", POGO_WIRE_NAME_MAX);
    return -1;
  }
  pogo_link *l = link_to(N, node);
  if (!l) return check_only(N, L, msg_idx, err);
  size_t start = begin(l, POGO_W_SEND_NAMED, 2 + nl + 16, err);
  if (start == (size_t)-1) return -1;
  pogo_wire_put_name(&l->out, name, nl);
  if (pogo_codec_encode(L, msg_idx, &l->pk, &N->ext, "msg", err) != 0) {
    pogo_link_cancel(l, start);
    return -1;
  }
  if (end(l, start, err) != 0) return -1;
  return after_send(N, L, l);
}

/* A frame of fixed fields only: ids a, b (b may be NULL), ref if has_ref. */
static void put_ids(pogo_link *l, uint8_t kind, const pogo_id *a, const uint64_t *ref, const pogo_id *b) {
  size_t s = begin(l, kind, 2 * POGO_WIRE_ID + 8, NULL);
  if (s == (size_t)-1) return;
  pogo_wire_id w;
  wire_of(a, &w);
  pogo_wire_put_id(&l->out, &w);
  if (ref) pogo_wire_put_u64(&l->out, *ref);
  if (b) {
    wire_of(b, &w);
    pogo_wire_put_id(&l->out, &w);
  }
  end(l, s, NULL);
}

static int tostring_cf(lua_State *L) {
  luaL_tolstring(L, 1, NULL);
  return 1;
}

/* Append the reason at idx (or its tostring if it cannot be sent). */
static void put_reason(pogo_node *N, lua_State *L, pogo_link *l, int reason_idx) {
  char err[POGO_CODEC_ERRLEN];
  reason_idx = lua_absindex(L, reason_idx);
  if (pogo_codec_encode(L, reason_idx, &l->pk, &N->ext, "reason", err) == 0) return;
  lua_checkstack(L, 3);
  lua_pushcfunction(L, tostring_cf);
  lua_pushvalue(L, reason_idx);
  if (lua_pcall(L, 1, 1, 0) != LUA_OK || lua_type(L, -1) != LUA_TSTRING) {
    lua_pop(L, 1);
    lua_pushliteral(L, "unserializable reason");
  }
  if (pogo_codec_encode(L, -1, &l->pk, NULL, "reason", err) != 0) msgpack_pack_nil(&l->pk);
  lua_pop(L, 1);
}

void pogo_dist_link(pogo_node *N, lua_State *L, const pogo_id *from, const pogo_id *to) {
  pogo_link *l = link_to(N, to->node);
  if (l) {
    put_ids(l, POGO_W_LINK, from, NULL, to);
    return;
  }
  pogo_proc *p = pogo_proc_get(N, from);
  if (!p) return;
  pogo_idset_remove(&p->links, to);
  lua_pushliteral(L, "noconnection");
  pogo_signal_exit(N, L, p, to, -1, 1);
  lua_pop(L, 1);
}

void pogo_dist_unlink(pogo_node *N, lua_State *L, const pogo_id *from, const pogo_id *to) {
  (void)L;
  pogo_link *l = link_to(N, to->node);
  if (l) put_ids(l, POGO_W_UNLINK, from, NULL, to);
}

void pogo_dist_exit(pogo_node *N, lua_State *L, const pogo_id *from, const pogo_id *to, int reason_idx, int linked) {
  pogo_link *l = link_to(N, to->node);
  if (!l) return;
  size_t s = begin(l, POGO_W_EXIT, 2 * POGO_WIRE_ID + 16, NULL);
  if (s == (size_t)-1) return;
  pogo_wire_id w;
  wire_of(from, &w);
  pogo_wire_put_id(&l->out, &w);
  wire_of(to, &w);
  pogo_wire_put_id(&l->out, &w);
  pogo_wire_put_u8(&l->out, linked ? POGO_WIRE_LINKED : 0);
  put_reason(N, L, l, reason_idx);
  end(l, s, NULL);
}

/* Deliver {"DOWN", ref, who, reason} to local process w, where who is the pid
 * `who`, or {name, node} for a monitor by name (placeholder with serial 0). */
static void deliver_down(pogo_node *N, lua_State *L, pogo_proc *w, uint64_t ref, const pogo_id *who, int reason_idx) {
  reason_idx = lua_absindex(L, reason_idx);
  lua_checkstack(L, 8);
  int pushed = 0;
  if (who->serial == 0 && N->dist) {
    pogo_push_ref(L, N->dist->ref_namemon);
    lua_pushinteger(L, (lua_Integer)ref);
    if (lua_rawget(L, -2) == LUA_TTABLE) {
      lua_pushinteger(L, (lua_Integer)ref);
      lua_pushnil(L);
      lua_rawset(L, -4);
      lua_remove(L, -2);
      pushed = 1;
    } else {
      lua_pop(L, 2);
    }
  }
  if (!pushed) pogo_ident_push(N, L, who);
  pogo_deliver_down(N, L, w, ref, -1, reason_idx);
  lua_pop(L, 1);
}

void pogo_dist_monitor(pogo_node *N, lua_State *L, const pogo_id *watcher, uint64_t ref, const pogo_id *target) {
  pogo_link *l = link_to(N, target->node);
  if (l) {
    put_ids(l, POGO_W_MONITOR, watcher, &ref, target);
    return;
  }
  pogo_proc *w = pogo_proc_get(N, watcher);
  if (!w) return;
  pogo_monset_remove(&w->watching, ref, NULL);
  lua_pushliteral(L, "noconnection");
  deliver_down(N, L, w, ref, target, -1);
  lua_pop(L, 1);
}

void pogo_dist_monitor_name(pogo_node *N, lua_State *L, const pogo_id *watcher, uint64_t ref, uint32_t node,
                            int name_idx) {
  name_idx = lua_absindex(L, name_idx);
  size_t nl;
  const char *name = lua_tolstring(L, name_idx, &nl);
  pogo_link *l = nl >= 1 && nl <= POGO_WIRE_NAME_MAX ? link_to(N, node) : NULL;
  lua_checkstack(L, 6);
  /* remember {name, node} for the DOWN message */
  lua_createtable(L, 2, 0);
  lua_pushvalue(L, name_idx);
  lua_rawseti(L, -2, 1);
  lua_pushstring(L, pogo_node_name(N, L, node));
  lua_rawseti(L, -2, 2);
  if (N->dist) {
    pogo_push_ref(L, N->dist->ref_namemon);
    lua_pushinteger(L, (lua_Integer)ref);
    lua_pushvalue(L, -3);
    lua_rawset(L, -3);
    lua_pop(L, 1);
  }
  if (l) {
    lua_pop(L, 1);
    size_t s = begin(l, POGO_W_MONITOR_NAME, POGO_WIRE_ID + 10 + nl, NULL);
    if (s == (size_t)-1) return;
    pogo_wire_id w;
    wire_of(watcher, &w);
    pogo_wire_put_id(&l->out, &w);
    pogo_wire_put_u64(&l->out, ref);
    pogo_wire_put_name(&l->out, name, nl);
    end(l, s, NULL);
    return;
  }
  pogo_proc *w = pogo_proc_get(N, watcher);
  if (w) {
    pogo_monset_remove(&w->watching, ref, NULL);
    lua_pushliteral(L, "noconnection");
    pogo_deliver_down(N, L, w, ref, -2, -1);
    lua_pop(L, 1);
  }
  if (N->dist) {
    pogo_push_ref(L, N->dist->ref_namemon);
    lua_pushinteger(L, (lua_Integer)ref);
    lua_pushnil(L);
    lua_rawset(L, -3);
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
}

void pogo_dist_demonitor(pogo_node *N, lua_State *L, const pogo_id *watcher, uint64_t ref, const pogo_id *target) {
  pogo_link *l = link_to(N, target->node);
  if (target->serial != 0) {
    if (l) put_ids(l, POGO_W_DEMONITOR, watcher, &ref, target);
    return;
  }
  if (!N->dist) return;
  int top = lua_gettop(L);
  lua_checkstack(L, 6);
  pogo_push_ref(L, N->dist->ref_namemon);
  lua_pushinteger(L, (lua_Integer)ref);
  if (lua_rawget(L, -2) == LUA_TTABLE) {
    lua_pushinteger(L, (lua_Integer)ref);
    lua_pushnil(L);
    lua_rawset(L, -4);
    lua_rawgeti(L, -1, 1);
    size_t nl;
    const char *name = lua_tolstring(L, -1, &nl);
    if (l && name && nl >= 1 && nl <= POGO_WIRE_NAME_MAX) {
      size_t s = begin(l, POGO_W_DEMONITOR_NAME, POGO_WIRE_ID + 10 + nl, NULL);
      if (s != (size_t)-1) {
        pogo_wire_id w;
        wire_of(watcher, &w);
        pogo_wire_put_id(&l->out, &w);
        pogo_wire_put_u64(&l->out, ref);
        pogo_wire_put_name(&l->out, name, nl);
        end(l, s, NULL);
      }
    }
  }
  lua_settop(L, top);
}

/* Write a DOWN frame on l: watcher's monitor ref saw `who` go with the reason at idx. */
static void put_down(pogo_node *N, lua_State *L, pogo_link *l, const pogo_id *watcher, uint64_t ref,
                     const pogo_id *who, int reason_idx) {
  size_t s = begin(l, POGO_W_DOWN, 2 * POGO_WIRE_ID + 24, NULL);
  if (s == (size_t)-1) return;
  pogo_wire_id w;
  wire_of(watcher, &w);
  pogo_wire_put_id(&l->out, &w);
  pogo_wire_put_u64(&l->out, ref);
  wire_of(who, &w);
  pogo_wire_put_id(&l->out, &w);
  put_reason(N, L, l, reason_idx);
  end(l, s, NULL);
}

void pogo_dist_down(pogo_node *N, lua_State *L, const pogo_id *watcher, uint64_t ref, const pogo_id *who, int reason_idx) {
  pogo_link *l = link_to(N, watcher->node);
  if (l) put_down(N, L, l, watcher, ref, who, reason_idx);
}

/* ---- receiving ---- */

/* Decode exactly one value from a frame's tail. 0, or -1 with *err. */
static int decode_tail(pogo_node *N, lua_State *L, const pogo_wire_msg *m, const char **err) {
  char cerr[POGO_CODEC_ERRLEN];
  size_t used = 0;
  if (pogo_codec_decode(L, m->tail, m->tail_len, &used, &N->ext, cerr) != 0) {
    *err = "undecodable value in frame";
    return -1;
  }
  if (used != m->tail_len) {
    lua_pop(L, 1);
    *err = "trailing bytes after value";
    return -1;
  }
  return 0;
}

/* A crash reason lost its metatable on the way: give it back. */
static void fix_reason(pogo_node *N, lua_State *L) {
  if (lua_type(L, -1) != LUA_TTABLE) return;
  lua_getfield(L, -1, "traceback");
  int is_crash = lua_type(L, -1) == LUA_TSTRING;
  lua_pop(L, 1);
  if (!is_crash) return;
  pogo_push_ref(L, N->ref_crash_mt);
  lua_setmetatable(L, -2);
}

static pogo_proc *named(pogo_node *N, lua_State *L, const pogo_wire_msg *m) {
  pogo_id id;
  pogo_push_ref(L, N->ref_names);
  lua_pushlstring(L, m->name, m->name_len);
  lua_rawget(L, -2);
  pogo_proc *p = pogo_ident_is_pid(L, -1, &id) ? pogo_proc_get(N, &id) : NULL;
  lua_pop(L, 2);
  return p;
}

/* The local process a (de)monitor frame names, by pid (`by_pid`) or by
 * registered name; *b receives its id (the pid given, or the named process's,
 * zeroed when no process has that name). */
static pogo_proc *frame_target(pogo_node *N, lua_State *L, const pogo_wire_msg *m, int by_pid, pogo_id *b) {
  if (by_pid) {
    id_of(0, &m->b, b);
    return pogo_proc_get(N, b);
  }
  pogo_proc *p = named(N, L, m);
  memset(b, 0, sizeof *b);
  if (p) pogo_proc_id(N, p, b);
  return p;
}

static void reply_noproc_down(pogo_node *N, lua_State *L, pogo_link *l, const pogo_id *w, uint64_t ref,
                              const pogo_id *who) {
  lua_pushliteral(L, "noproc");
  put_down(N, L, l, w, ref, who, -1);
  lua_pop(L, 1);
}

int pogo_dist_on_data(pogo_dist *d, pogo_link *l, const pogo_wire_msg *m, const char **err) {
  pogo_node *N = d->N;
  lua_State *L = N->L;
  int top = lua_gettop(L);
  if (!lua_checkstack(L, 24)) {
    *err = "Lua stack overflow";
    return -1;
  }
  uint32_t peer = l->peer;
  pogo_id a, b;
  pogo_proc *p;
  int rc = 0;
  switch (m->kind) {
  case POGO_W_SEND:
    id_of(0, &m->a, &a);
    p = pogo_proc_get(N, &a);
    if (!p) break;
    if (decode_tail(N, L, m, err) != 0) { rc = -1; break; }
    pogo_mailbox_deliver(N, L, p, -1);
    break;
  case POGO_W_SEND_NAMED:
    if (decode_tail(N, L, m, err) != 0) { rc = -1; break; }
    p = named(N, L, m);
    if (p) pogo_mailbox_deliver(N, L, p, -1);
    break;
  case POGO_W_LINK:
    id_of(peer, &m->a, &a);
    id_of(0, &m->b, &b);
    p = pogo_proc_get(N, &b);
    if (p) {
      pogo_idset_add(&p->links, &a);
    } else {
      size_t s = begin(l, POGO_W_EXIT, 2 * POGO_WIRE_ID + 16, NULL);
      if (s == (size_t)-1) break;
      pogo_wire_put_id(&l->out, &m->b);
      pogo_wire_put_id(&l->out, &m->a);
      pogo_wire_put_u8(&l->out, POGO_WIRE_LINKED);
      lua_pushliteral(L, "noproc");
      put_reason(N, L, l, -1);
      end(l, s, NULL);
    }
    break;
  case POGO_W_UNLINK:
    id_of(peer, &m->a, &a);
    id_of(0, &m->b, &b);
    p = pogo_proc_get(N, &b);
    if (p) pogo_idset_remove(&p->links, &a);
    break;
  case POGO_W_EXIT:
    id_of(peer, &m->a, &a);
    id_of(0, &m->b, &b);
    if (decode_tail(N, L, m, err) != 0) { rc = -1; break; }
    fix_reason(N, L);
    p = pogo_proc_get(N, &b);
    if (!p) break;
    if (m->flags & POGO_WIRE_LINKED) {
      if (pogo_idset_remove(&p->links, &a)) pogo_signal_exit(N, L, p, &a, -1, 1);
    } else {
      pogo_signal_exit(N, L, p, &a, -1, 0);
    }
    break;
  case POGO_W_MONITOR:
  case POGO_W_MONITOR_NAME:
    id_of(peer, &m->a, &a);
    p = frame_target(N, L, m, m->kind == POGO_W_MONITOR, &b);
    if (p) pogo_monset_add(&p->watchers, m->ref, &a);
    else reply_noproc_down(N, L, l, &a, m->ref, &b);
    break;
  case POGO_W_DEMONITOR:
  case POGO_W_DEMONITOR_NAME:
    id_of(peer, &m->a, &a);
    p = frame_target(N, L, m, m->kind == POGO_W_DEMONITOR, &b);
    if (p) pogo_monset_remove_pair(&p->watchers, m->ref, &a);
    break;
  case POGO_W_DOWN: {
    id_of(0, &m->a, &a);
    id_of(peer, &m->b, &b);
    if (decode_tail(N, L, m, err) != 0) { rc = -1; break; }
    fix_reason(N, L);
    p = pogo_proc_get(N, &a);
    pogo_mon mon;
    if (!p || !pogo_monset_remove(&p->watching, m->ref, &mon)) break;
    if (mon.other.node != peer) { /* not a monitor on that node: put it back */
      pogo_monset_add(&p->watching, mon.ref, &mon.other);
      break;
    }
    deliver_down(N, L, p, m->ref, mon.other.serial == 0 ? &mon.other : &b, -1);
    break;
  }
  case POGO_W_PEERS:
    if (decode_tail(N, L, m, err) != 0) { rc = -1; break; }
    if (lua_type(L, -1) == LUA_TTABLE) pogo_mesh_gossip_in(d, L, l);
    break;
  default:
    *err = "unexpected frame kind";
    rc = -1;
    break;
  }
  lua_settop(L, top);
  return rc;
}

/* ---- nodes coming and going ---- */

/* Send msg (at -1) to every live subscriber of monitor_nodes. */
static void notify_subscribers(pogo_dist *d, lua_State *L) {
  pogo_node *N = d->N;
  int msg = lua_gettop(L);
  lua_checkstack(L, 8);
  pogo_push_ref(L, d->ref_subs);
  int subs = lua_gettop(L);
  lua_newtable(L); /* snapshot: delivering may change the set */
  int list = lua_gettop(L);
  lua_Integer n = 0;
  lua_pushnil(L);
  while (lua_next(L, subs)) {
    lua_pop(L, 1);
    lua_pushvalue(L, -1);
    lua_rawseti(L, list, ++n);
  }
  for (lua_Integer i = 1; i <= n; i++) {
    pogo_id id;
    lua_rawgeti(L, list, i);
    pogo_proc *p = pogo_ident_is_pid(L, -1, &id) ? pogo_proc_get(N, &id) : NULL;
    if (p) {
      pogo_mailbox_deliver(N, L, p, msg);
    } else {
      lua_pushvalue(L, -1);
      lua_pushnil(L);
      lua_rawset(L, subs);
    }
    lua_pop(L, 1);
  }
  lua_settop(L, msg);
}

void pogo_dist_nodeup(pogo_dist *d, lua_State *L, uint32_t idx) {
  int top = lua_gettop(L);
  lua_createtable(L, 2, 0);
  lua_pushliteral(L, "nodeup");
  lua_rawseti(L, -2, 1);
  lua_pushstring(L, pogo_node_name(d->N, L, idx));
  lua_rawseti(L, -2, 2);
  notify_subscribers(d, L);
  lua_settop(L, top);
}

typedef struct fanout {
  uint32_t slot;
  uint64_t serial;
  int down; /* 1 DOWN to the watcher, 0 exit signal over a link */
  uint64_t ref;
  pogo_id other;
} fanout;

void pogo_dist_nodedown(pogo_dist *d, lua_State *L, uint32_t idx, const char *reason) {
  pogo_node *N = d->N;
  int top = lua_gettop(L);
  lua_checkstack(L, 12);
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
        if (other.node != idx) continue;
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
    if (f->down) deliver_down(N, L, p, f->ref, &f->other, why);
    else pogo_signal_exit(N, L, p, &f->other, why, 1);
  }
  free(acts);
  lua_createtable(L, 3, 0);
  lua_pushliteral(L, "nodedown");
  lua_rawseti(L, -2, 1);
  lua_pushstring(L, pogo_node_name(N, L, idx));
  lua_rawseti(L, -2, 2);
  lua_pushstring(L, reason);
  lua_rawseti(L, -2, 3);
  notify_subscribers(d, L);
  lua_settop(L, top);
}

void pogo_dist_free(pogo_dist *d, lua_State *L) {
  pogo_mesh_free(d);
  luaL_unref(L, LUA_REGISTRYINDEX, d->ref_subs);
  luaL_unref(L, LUA_REGISTRYINDEX, d->ref_namemon);
  free(d->name);
  if (d->cookie) {
    memset(d->cookie, 0, d->cookie_len);
    free(d->cookie);
  }
  free(d);
}

void pogo_node_dist_close(struct pogo_node *N, lua_State *L) {
  if (!N->dist) return;
  pogo_dist *d = N->dist;
  N->dist = NULL;
  pogo_dist_free(d, L);
}

/* ---- Lua API ---- */

static pogo_dist *started(lua_State *L, pogo_node *N, const char *what) {
  if (!N->dist || N->dist->stopping) luaL_error(L, "%s: the node is not started (pogo.start)", what);
  return N->dist;
}

static lua_Integer opt_ms(lua_State *L, int t, const char *field, lua_Integer def, lua_Integer min) {
  lua_getfield(L, t, field);
  lua_Integer v = lua_isnil(L, -1) ? def : lua_tointeger(L, -1);
  if (!lua_isnil(L, -1) && !lua_isinteger(L, -1)) luaL_error(L, "pogo.start: %s must be an integer", field);
  lua_pop(L, 1);
  if (v < min || v > 0x7fffffff) luaL_error(L, "pogo.start: %s out of range", field);
  return v;
}

/* dist_start{name=, host=, port=, cookie=, seeds=, heartbeat_ms=, timeout_ms=,
 *   max_frame=, backoff_min_ms=, backoff_max_ms=, forget_ms=, log=, block=}
 * -> full node name, port */
static int l_dist_start(lua_State *L) {
  pogo_node *N = POGO_NODE(L);
  luaL_checktype(L, 1, LUA_TTABLE);
  if (N->dist && !N->dist->stopping) return luaL_error(L, "pogo.start: the node is already started as %s", N->dist->name);
  if (N->dist) pogo_node_dist_close(N, L);
  lua_getfield(L, 1, "name");
  size_t nl;
  const char *base = luaL_checklstring(L, -1, &nl);
  for (size_t i = 0; i < nl; i++)
    if (base[i] <= 0x20 || base[i] >= 0x7f || base[i] == '@' || base[i] == ':')
      return luaL_error(L, "pogo.start: invalid node name '%s'", base);
  if (nl == 0 || nl > 100) return luaL_error(L, "pogo.start: node names are 1 to 100 characters");
  lua_getfield(L, 1, "host");
  const char *host = luaL_optstring(L, -1, "127.0.0.1");
  lua_getfield(L, 1, "cookie");
  size_t cl;
  const char *cookie = luaL_checklstring(L, -1, &cl);
  if (cl == 0) return luaL_error(L, "pogo.start: empty cookie");
  lua_Integer port = opt_ms(L, 1, "port", 0, 0);
  if (port > 65535) return luaL_error(L, "pogo.start: port out of range");
  if (strlen(host) >= POGO_HOST_MAX) return luaL_error(L, "pogo.start: host name too long");
  uint32_t heartbeat = (uint32_t)opt_ms(L, 1, "heartbeat_ms", 1000, 10);
  uint32_t timeout = (uint32_t)opt_ms(L, 1, "timeout_ms", 5000, 20);
  uint32_t max_frame = (uint32_t)opt_ms(L, 1, "max_frame", 64 * 1024 * 1024, POGO_HS_MAX_FRAME);
  uint32_t bmin = (uint32_t)opt_ms(L, 1, "backoff_min_ms", 50, 1);
  uint32_t bmax = (uint32_t)opt_ms(L, 1, "backoff_max_ms", 2000, 1);
  uint32_t forget = (uint32_t)opt_ms(L, 1, "forget_ms", 300000, 0);
  lua_getfield(L, 1, "log");
  int log = lua_isnil(L, -1) || lua_toboolean(L, -1);
  lua_pop(L, 1);

  pogo_dist *d = calloc(1, sizeof *d);
  if (!d) return luaL_error(L, "pogo.start: out of memory");
  d->N = N;
  d->ref_subs = d->ref_namemon = LUA_NOREF;
  snprintf(d->host, sizeof d->host, "%s", host);
  d->port = (int)port;
  d->heartbeat_ms = heartbeat;
  d->timeout_ms = timeout;
  d->max_frame = max_frame;
  d->backoff_min = bmin;
  d->backoff_max = bmax < bmin ? bmin : bmax;
  d->forget_ms = forget;
  d->log = log;
  d->cookie = malloc(cl);
  if (!d->cookie) {
    free(d);
    return luaL_error(L, "pogo.start: out of memory");
  }
  memcpy(d->cookie, cookie, cl);
  d->cookie_len = cl;
  msgpack_packer_init(&d->null_pk, NULL, null_write);
  lua_newtable(L);
  d->ref_subs = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_newtable(L);
  d->ref_namemon = luaL_ref(L, LUA_REGISTRYINDEX);
  N->dist = d;

  char err[256];
  if (pogo_mesh_start(d, L, err, sizeof err) != 0) {
    pogo_node_dist_close(N, L);
    return luaL_error(L, "pogo.start: %s", err);
  }
  if (strchr(host, ':')) lua_pushfstring(L, "%s@[%s]:%d", base, host, d->port);
  else lua_pushfstring(L, "%s@%s:%d", base, host, d->port);
  d->name = strdup(lua_tostring(L, -1));
  d->name_len = strlen(d->name);
  int name_idx = lua_gettop(L);

  lua_getfield(L, 1, "block");
  if (lua_istable(L, -1)) {
    for (lua_Integer i = 1; lua_rawgeti(L, -1, i) == LUA_TSTRING; i++) {
      size_t bl;
      const char *b = lua_tolstring(L, -1, &bl);
      uint32_t idx = pogo_node_index(N, L, b, bl);
      if (idx) pogo_mesh_block(d, L, idx, 1);
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  lua_getfield(L, 1, "seeds");
  if (lua_istable(L, -1)) {
    for (lua_Integer i = 1; lua_rawgeti(L, -1, i) != LUA_TNIL; i++) {
      const char *s = lua_tostring(L, -1);
      if (!s || pogo_mesh_add_seed(d, s, err, sizeof err) != 0) {
        if (!s) snprintf(err, sizeof err, "seeds must be strings");
        pogo_node_dist_close(N, L);
        return luaL_error(L, "pogo.start: %s", err);
      }
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  lua_pushvalue(L, name_idx);
  lua_pushinteger(L, d->port);
  return 2;
}

/* dist_stop([reason]): close every link, telling peers why (default "shutdown") */
static int l_dist_stop(lua_State *L) {
  pogo_node *N = POGO_NODE(L);
  const char *reason = luaL_optstring(L, 1, "shutdown");
  if (N->dist) pogo_mesh_stop(N->dist, L, reason);
  return 0;
}

/* dist_drain(timeout_ms) -> true when every link closed cleanly. Only from
 * the main chunk (elsewhere it returns at once): drives the loop until the
 * links of a stopped node are closed, then closes whatever is left. */
static int l_dist_drain(lua_State *L) {
  pogo_node *N = POGO_NODE(L);
  lua_Integer ms = luaL_optinteger(L, 1, 1000);
  pogo_dist *d = N->dist;
  if (!d || !d->stopping) {
    lua_pushboolean(L, d == NULL);
    return 1;
  }
  if (wait_mode(N, L) != 2) { /* the loop will finish the job */
    lua_pushboolean(L, d->links == NULL);
    return 1;
  }
  uint64_t deadline = pogo_now(N) + (uint64_t)(ms > 0 ? ms : 0);
  N->driving++;
  while (d->links && pogo_now(N) < deadline) uv_run(N->loop, UV_RUN_ONCE);
  N->driving--;
  int clean = d->links == NULL;
  while (d->links) pogo_link_close(d->links);
  pogo_mesh_finish_stop(d);
  lua_pushboolean(L, clean);
  return 1;
}

/* dist_connect(addr, pid, ref) -> node (already connected) | nil (pending:
 * pid gets {ref, true, node} or {ref, false, reason}); raises on a bad address */
static int l_dist_connect(lua_State *L) {
  pogo_node *N = POGO_NODE(L);
  pogo_dist *d = started(L, N, "pogo.connect");
  const char *addr = luaL_checkstring(L, 1);
  if (!pogo_ident_is_pid(L, 2, NULL)) return luaL_argerror(L, 2, "pid expected");
  char err[256];
  int r = pogo_mesh_connect(d, L, addr, 2, 3, err, sizeof err);
  if (r < 0) return luaL_error(L, "pogo.connect: %s", err);
  if (r == 0) lua_pushnil(L);
  return 1;
}

static uint32_t check_node(lua_State *L, pogo_node *N, int idx) {
  size_t len;
  const char *name = luaL_checklstring(L, idx, &len);
  return pogo_node_index(N, L, name, len);
}

/* dist_disconnect(node) -> whether it was connected */
static int l_dist_disconnect(lua_State *L) {
  pogo_node *N = POGO_NODE(L);
  pogo_dist *d = started(L, N, "pogo.disconnect");
  uint32_t idx = check_node(L, N, 1);
  lua_pushboolean(L, idx && pogo_mesh_disconnect(d, L, idx, "disconnect"));
  return 1;
}

/* dist_block(node, flag) */
static int l_dist_block(lua_State *L) {
  pogo_node *N = POGO_NODE(L);
  pogo_dist *d = started(L, N, "pogo.block");
  uint32_t idx = check_node(L, N, 1);
  if (idx) pogo_mesh_block(d, L, idx, lua_toboolean(L, 2));
  return 0;
}

/* dist_nodes() -> names of connected nodes */
static int l_dist_nodes(lua_State *L) {
  pogo_node *N = POGO_NODE(L);
  pogo_dist *d = N->dist;
  lua_newtable(L);
  if (!d || d->stopping) return 1;
  lua_Integer n = 0;
  for (uint32_t i = 1; i < d->npeers; i++) {
    if (!d->peers[i] || !d->peers[i]->up) continue;
    lua_pushstring(L, pogo_node_name(N, L, i));
    lua_rawseti(L, -2, ++n);
  }
  return 1;
}

/* dist_monitor_nodes(pid, flag) */
static int l_dist_monitor_nodes(lua_State *L) {
  pogo_node *N = POGO_NODE(L);
  pogo_dist *d = started(L, N, "pogo.monitor_nodes");
  if (!pogo_ident_is_pid(L, 1, NULL)) return luaL_argerror(L, 1, "pid expected");
  pogo_push_ref(L, d->ref_subs);
  lua_pushvalue(L, 1);
  if (lua_toboolean(L, 2)) lua_pushboolean(L, 1);
  else lua_pushnil(L);
  lua_rawset(L, -3);
  return 0;
}

static const char *state_name(int s) {
  switch (s) {
  case LS_CONNECTING: return "connecting";
  case LS_HANDSHAKE: return "handshake";
  case LS_UP: return "up";
  case LS_CLOSING: return "closing";
  default: return "dead";
  }
}

/* dist_info() -> {name=, port=, started=, peers = {[node] = {dialer=, creation=,
 *   backlog=, wanted=, blocked=, seed=}}, links = {{state=, peer=, outgoing=}, ...}} */
static int l_dist_info(lua_State *L) {
  pogo_node *N = POGO_NODE(L);
  pogo_dist *d = N->dist;
  lua_newtable(L);
  if (!d) return 1;
  lua_pushstring(L, d->name);
  lua_setfield(L, -2, "name");
  lua_pushinteger(L, d->port);
  lua_setfield(L, -2, "port");
  lua_pushboolean(L, !d->stopping);
  lua_setfield(L, -2, "started");
  lua_newtable(L);
  for (uint32_t i = 1; i < d->npeers; i++) {
    pogo_peer *p = d->peers[i];
    if (!p) continue;
    lua_newtable(L);
    lua_pushboolean(L, p->up != NULL);
    lua_setfield(L, -2, "up");
    if (p->up) {
      lua_pushstring(L, p->dialer ? p->dialer : "?");
      lua_setfield(L, -2, "dialer");
      lua_pushinteger(L, p->creation);
      lua_setfield(L, -2, "creation");
      lua_pushinteger(L, (lua_Integer)pogo_link_backlog(p->up));
      lua_setfield(L, -2, "backlog");
    }
    lua_pushboolean(L, p->wanted);
    lua_setfield(L, -2, "wanted");
    lua_pushboolean(L, p->blocked);
    lua_setfield(L, -2, "blocked");
    lua_pushboolean(L, p->seed);
    lua_setfield(L, -2, "seed");
    lua_setfield(L, -2, pogo_node_name(N, L, i));
  }
  lua_setfield(L, -2, "peers");
  lua_newtable(L);
  lua_Integer n = 0;
  for (pogo_link *l = d->links; l; l = l->next) {
    lua_createtable(L, 0, 4);
    lua_pushstring(L, state_name(l->state));
    lua_setfield(L, -2, "state");
    lua_pushboolean(L, l->outgoing);
    lua_setfield(L, -2, "outgoing");
    lua_pushstring(L, l->peer_name ? l->peer_name : l->addr);
    lua_setfield(L, -2, "peer");
    lua_rawseti(L, -2, ++n);
  }
  lua_setfield(L, -2, "links");
  return 1;
}

/* dist_inject(node, bytes) -> true: append raw bytes to the link to node
 * (a test hook for malformed frames on an authenticated link) */
static int l_dist_inject(lua_State *L) {
  pogo_node *N = POGO_NODE(L);
  uint32_t idx = check_node(L, N, 1);
  size_t n;
  const char *bytes = luaL_checklstring(L, 2, &n);
  pogo_link *l = link_to(N, idx);
  if (!l) return 0;
  if (pogo_buf_append(&l->out, bytes, n) != 0) return luaL_error(L, "out of memory");
  pogo_link_dirty(l);
  lua_pushboolean(L, 1);
  return 1;
}

/* dist_random(n) -> n cryptographically random bytes */
static int l_dist_random(lua_State *L) {
  lua_Integer n = luaL_checkinteger(L, 1);
  if (n < 1 || n > 1024) return luaL_argerror(L, 1, "1..1024 expected");
  unsigned char buf[1024];
  if (pogo_hs_random(buf, (size_t)n) != 0) return luaL_error(L, "no random bytes available");
  lua_pushlstring(L, (const char *)buf, (size_t)n);
  return 1;
}

void pogo_dist_register(lua_State *L) {
  static const luaL_Reg fns[] = {
    {"dist_start", l_dist_start}, {"dist_stop", l_dist_stop}, {"dist_drain", l_dist_drain},
    {"dist_connect", l_dist_connect}, {"dist_disconnect", l_dist_disconnect}, {"dist_block", l_dist_block},
    {"dist_nodes", l_dist_nodes}, {"dist_monitor_nodes", l_dist_monitor_nodes}, {"dist_info", l_dist_info},
    {"dist_inject", l_dist_inject}, {"dist_random", l_dist_random}, {NULL, NULL}};
  pogo_setfuncs(L, fns);
}
