/*
 * outbound.c: the remote operations: what the runtime asks of another node
 * (the ops of remote.h) becomes one frame (wire.h) on the up connection to
 * that node.
 *
 * Contract
 * - Every op returns POGO_REMOTE_NOCONN when the node has no up connection
 *   (or this node is stopping): the runtime then applies the fallbacks of a
 *   node that is not connected (remote.c). Otherwise the frame is queued on
 *   the connection, so messages between two processes keep their order.
 * - send: a message that cannot be encoded, or that is larger than the peer
 *   accepts, is POGO_REMOTE_ERROR with the reason ("msg.handler: function
 *   cannot be sent", "msg: too large to be sent (more than N bytes)"); the
 *   encoder stops as soon as it passes the limit. Messages are encoded
 *   without sorting map keys (pogo_codec_encode_msg). Above POGO_BUSY_HIGH
 *   bytes of backlog a sending process is suspended until the backlog drains
 *   below POGO_BUSY_LOW or the connection goes (POGO_REMOTE_SUSPENDED); the
 *   main chunk waits inside the call; a luv callback just queues.
 * - Exit and DOWN reasons that cannot be serialized, or that would not fit
 *   in a frame (their encoding stops there), cross as their tostring(), cut
 *   to 1 KiB: the EXIT or DOWN always goes. Remote monitors are recorded on the target's side by
 *   (ref, watcher): refs made by different nodes may have equal serials.
 */
#include <stdio.h>
#include <string.h>

#include "dist/dist.h"

/* The runtime checks names against its limit; the wire must carry them all. */
_Static_assert(POGO_WIRE_NAME_MAX >= POGO_REMOTE_NAME_MAX, "wire names shorter than the runtime's");


pogo_conn *pogo_outbound_conn(pogo_dist *d, uint32_t node) {
  if (d->stopping) return NULL;
  pogo_conn *c = pogo_mesh_up(d, node);
  return c && c->state == CS_UP ? c : NULL;
}

static size_t begin(pogo_conn *c, uint8_t kind, size_t hint, char err[POGO_CODEC_ERRLEN]) {
  size_t s = pogo_conn_begin(c, kind, hint);
  if (s == (size_t)-1 && err) snprintf(err, POGO_CODEC_ERRLEN, "out of memory");
  return s;
}

static int end(pogo_conn *c, size_t start, char err[POGO_CODEC_ERRLEN]) {
  size_t size = c->out.len - start - POGO_FRAME_HDR;
  if (pogo_conn_end(c, start) == 0) return 0;
  if (err)
    snprintf(err, POGO_CODEC_ERRLEN, "msg: too large to be sent (%zu bytes, the peer accepts %u)", size,
             (unsigned)c->peer_max_frame);
  return -1;
}

/* Append an id's wire form: creation, serial, slot (its node is implied). */
static void put_id(pogo_conn *c, const pogo_id *id) {
  pogo_wire_id w = {.creation = id->creation, .serial = id->serial, .slot = id->slot};
  pogo_wire_put_id(&c->out, &w);
}

/* ---- messages ---- */

typedef struct drain {
  pogo_dist *d;
  uint32_t node;
} drain;

static int still_busy(void *arg) {
  drain *w = arg;
  pogo_conn *c = pogo_outbound_conn(w->d, w->node);
  return c && pogo_conn_backlog(c) >= POGO_BUSY_LOW;
}

/* After a frame was queued: hold the sender back if the backlog is too big. */
static int after_send(pogo_dist *d, lua_State *L, pogo_conn *c) {
  if (pogo_conn_backlog(c) < POGO_BUSY_HIGH) return POGO_REMOTE_OK;
  pogo_node *N = d->N;
  int mode = pogo_sched_block_mode(N, L);
  if (mode == POGO_BLOCK_YIELD) {
    pogo_rq_entry e;
    if (pogo_sched_running(N, &e) != 0 || pogo_conn_add_busy(c, &e) != 0) return POGO_REMOTE_OK;
    pogo_sched_suspend(N);
    pogo_conn_flush(c);
    return POGO_REMOTE_SUSPENDED;
  }
  if (mode == POGO_BLOCK_DRIVE) {
    drain w = {d, c->peer};
    pogo_conn_flush(c);
    pogo_sched_drive_while(N, still_busy, &w, -1);
  }
  return POGO_REMOTE_OK;
}

/* Encode the message at msg_idx after the fixed fields of the frame at start. */
static int put_msg(pogo_dist *d, lua_State *L, pogo_conn *c, size_t start, int msg_idx, char err[POGO_CODEC_ERRLEN]) {
  size_t fixed = c->out.len - start - POGO_FRAME_HDR, max = c->peer_max_frame;
  if (pogo_codec_encode_msg(L, msg_idx, &c->pk, &d->N->ext, "msg", max > fixed ? max - fixed : 1, err) != 0) {
    pogo_conn_cancel(c, start);
    return POGO_REMOTE_ERROR;
  }
  if (end(c, start, err) != 0) return POGO_REMOTE_ERROR;
  pogo_stats_msg_out(c);
  return after_send(d, L, c);
}

int pogo_outbound_send(void *ctx, lua_State *L, const pogo_id *to, int msg_idx, char err[POGO_CODEC_ERRLEN]) {
  pogo_dist *d = ctx;
  pogo_conn *c = pogo_outbound_conn(d, to->node);
  if (!c) return POGO_REMOTE_NOCONN;
  size_t start = begin(c, POGO_W_SEND, POGO_WIRE_ID + 16, err);
  if (start == (size_t)-1) return POGO_REMOTE_ERROR;
  put_id(c, to);
  return put_msg(d, L, c, start, msg_idx, err);
}

int pogo_outbound_send_named(void *ctx, lua_State *L, uint32_t node, const char *name, size_t len, int msg_idx,
                             char err[POGO_CODEC_ERRLEN]) {
  pogo_dist *d = ctx;
  pogo_conn *c = pogo_outbound_conn(d, node);
  if (!c) return POGO_REMOTE_NOCONN;
  size_t start = begin(c, POGO_W_SEND_NAMED, 2 + len + 16, err);
  if (start == (size_t)-1) return POGO_REMOTE_ERROR;
  pogo_wire_put_name(&c->out, name, len);
  return put_msg(d, L, c, start, msg_idx, err);
}

/* ---- links, exit signals, monitors ---- */

/* A frame of fixed fields only: ids a, b (b may be NULL), ref if given. */
static void put_ids(pogo_conn *c, uint8_t kind, const pogo_id *a, const uint64_t *ref, const pogo_id *b) {
  size_t s = begin(c, kind, 2 * POGO_WIRE_ID + 8, NULL);
  if (s == (size_t)-1) return;
  put_id(c, a);
  if (ref) pogo_wire_put_u64(&c->out, *ref);
  if (b) put_id(c, b);
  end(c, s, NULL);
}

static int tostring_cf(lua_State *L) {
  luaL_tolstring(L, 1, NULL);
  return 1;
}

/* The most of a reason's text sent when the reason itself cannot be. */
#define REASON_TEXT_MAX 1024
/* Room left in a frame for what goes before the reason (ids, a ref, ...). */
#define REASON_ROOM 256

/* Append the reason at idx, or its text if it cannot be sent (a function in
 * it; more than a frame holds: encoding stops there, so a reason that
 * expands when encoded, a table holding one table twice at each of 40
 * levels, costs no more than a frame's worth of work), cut to
 * REASON_TEXT_MAX bytes. The EXIT or DOWN always goes. */
static void put_reason(pogo_dist *d, lua_State *L, pogo_conn *c, int reason_idx) {
  char err[POGO_CODEC_ERRLEN];
  reason_idx = lua_absindex(L, reason_idx);
  size_t max = c->peer_max_frame > 2 * REASON_ROOM ? c->peer_max_frame - REASON_ROOM : REASON_ROOM;
  if (pogo_codec_encode_msg(L, reason_idx, &c->pk, &d->N->ext, "reason", max, err) == 0) return;
  lua_checkstack(L, 4);
  lua_pushcfunction(L, tostring_cf);
  lua_pushvalue(L, reason_idx);
  if (lua_pcall(L, 1, 1, 0) != LUA_OK || lua_type(L, -1) != LUA_TSTRING) {
    lua_pop(L, 1);
    lua_pushliteral(L, "unserializable reason");
  }
  size_t len;
  const char *text = lua_tolstring(L, -1, &len);
  if (len > REASON_TEXT_MAX) {
    lua_pushlstring(L, text, REASON_TEXT_MAX);
    lua_pushfstring(L, "... (a reason of %I bytes, cut)", (lua_Integer)len);
    lua_concat(L, 2);
    lua_remove(L, -2); /* the whole text */
  }
  if (pogo_codec_encode_msg(L, -1, &c->pk, NULL, "reason", max, err) != 0) msgpack_pack_nil(&c->pk);
  lua_pop(L, 1);
}

void pogo_outbound_put_exit(pogo_dist *d, lua_State *L, pogo_conn *c, const pogo_id *from, const pogo_id *to,
                            int reason_idx, int linked) {
  size_t s = begin(c, POGO_W_EXIT, 2 * POGO_WIRE_ID + 16, NULL);
  if (s == (size_t)-1) return;
  put_id(c, from);
  put_id(c, to);
  pogo_wire_put_u8(&c->out, linked ? POGO_WIRE_LINKED : 0);
  put_reason(d, L, c, reason_idx);
  end(c, s, NULL);
}

void pogo_outbound_put_down(pogo_dist *d, lua_State *L, pogo_conn *c, const pogo_id *watcher, uint64_t ref,
                            const pogo_id *who, int reason_idx) {
  size_t s = begin(c, POGO_W_DOWN, 2 * POGO_WIRE_ID + 24, NULL);
  if (s == (size_t)-1) return;
  put_id(c, watcher);
  pogo_wire_put_u64(&c->out, ref);
  put_id(c, who);
  put_reason(d, L, c, reason_idx);
  end(c, s, NULL);
}

/* LINK, UNLINK, MONITOR or DEMONITOR to the node of `node_of`. */
static int ids_frame(void *ctx, uint8_t kind, const pogo_id *node_of, const pogo_id *a, const uint64_t *ref,
                     const pogo_id *b) {
  pogo_conn *c = pogo_outbound_conn(ctx, node_of->node);
  if (!c) return POGO_REMOTE_NOCONN;
  put_ids(c, kind, a, ref, b);
  return POGO_REMOTE_OK;
}

int pogo_outbound_link(void *ctx, lua_State *L, const pogo_id *from, const pogo_id *to) {
  (void)L;
  return ids_frame(ctx, POGO_W_LINK, to, from, NULL, to);
}

int pogo_outbound_unlink(void *ctx, lua_State *L, const pogo_id *from, const pogo_id *to) {
  (void)L;
  return ids_frame(ctx, POGO_W_UNLINK, to, from, NULL, to);
}

int pogo_outbound_exit(void *ctx, lua_State *L, const pogo_id *from, const pogo_id *to, int reason_idx, int linked) {
  pogo_conn *c = pogo_outbound_conn(ctx, to->node);
  if (!c) return POGO_REMOTE_NOCONN;
  pogo_outbound_put_exit(ctx, L, c, from, to, reason_idx, linked);
  return POGO_REMOTE_OK;
}

int pogo_outbound_monitor(void *ctx, lua_State *L, const pogo_id *watcher, uint64_t ref, const pogo_id *target) {
  (void)L;
  return ids_frame(ctx, POGO_W_MONITOR, target, watcher, &ref, target);
}

int pogo_outbound_demonitor(void *ctx, lua_State *L, const pogo_id *watcher, uint64_t ref, const pogo_id *target) {
  (void)L;
  return ids_frame(ctx, POGO_W_DEMONITOR, target, watcher, &ref, target);
}

/* MONITOR_NAME or DEMONITOR_NAME: watcher, ref, name. */
static int put_by_name(void *ctx, uint8_t kind, const pogo_id *watcher, uint64_t ref, uint32_t node,
                       const char *name, size_t len) {
  pogo_conn *c = pogo_outbound_conn(ctx, node);
  if (!c) return POGO_REMOTE_NOCONN;
  size_t s = begin(c, kind, POGO_WIRE_ID + 10 + len, NULL);
  if (s == (size_t)-1) return POGO_REMOTE_OK;
  put_id(c, watcher);
  pogo_wire_put_u64(&c->out, ref);
  pogo_wire_put_name(&c->out, name, len);
  end(c, s, NULL);
  return POGO_REMOTE_OK;
}

int pogo_outbound_monitor_name(void *ctx, lua_State *L, const pogo_id *watcher, uint64_t ref, uint32_t node,
                               const char *name, size_t len) {
  (void)L;
  return put_by_name(ctx, POGO_W_MONITOR_NAME, watcher, ref, node, name, len);
}

int pogo_outbound_demonitor_name(void *ctx, lua_State *L, const pogo_id *watcher, uint64_t ref, uint32_t node,
                                 const char *name, size_t len) {
  (void)L;
  return put_by_name(ctx, POGO_W_DEMONITOR_NAME, watcher, ref, node, name, len);
}

int pogo_outbound_down(void *ctx, lua_State *L, const pogo_id *watcher, uint64_t ref, const pogo_id *who,
                       int reason_idx) {
  pogo_conn *c = pogo_outbound_conn(ctx, watcher->node);
  if (!c) return POGO_REMOTE_NOCONN;
  pogo_outbound_put_down(ctx, L, c, watcher, ref, who, reason_idx);
  return POGO_REMOTE_OK;
}
