/*
 * inbound.c: the frames a peer sends once its connection is up, applied to
 * local processes through the runtime's functions (runtime.h).
 *
 * Contract
 * - One call per frame (pogo_inbound_frame, from the connection's read
 *   callback). The payload is parsed (wire.h); a SEND or SEND_NAMED is decoded
 *   and posted to the mailbox; LINK, UNLINK, EXIT, MONITOR(_NAME),
 *   DEMONITOR(_NAME) and DOWN go to pogo_links_peer_* with the same semantics
 *   as local operations; a LINK or MONITOR of a process that does not exist is
 *   answered at once (EXIT or DOWN "noproc"). TICK only proves the peer is
 *   alive, PING and PONG measure the round trip too (stats.c);
 *   PEERS is gossip for the mesh, LEFT too (a peer of the sender
 *   left on purpose: mesh.c); BYE closes the connection with the peer's
 *   reason.
 * - Ids in a frame carry no node name: those of the sender's processes get
 *   the connection's node index, the others are this node's.
 * - Anything a peer sends that does not parse or decode closes that
 *   connection only ("protocol_error", logged); a message for a process that
 *   is gone is dropped.
 * - Decoding is priced first (pogo_codec_estimate): a message whose value
 *   would take more Lua heap than max_memory, or than DECODE_EXPANSION times
 *   the frame limit (128 MiB by default, decoded in about 1 s at worst; a
 *   20 MB array of booleans would take 320 MB), is dropped and
 *   logged without being decoded; at max_memory a message that does not fit
 *   the room left (after a collection, at most every 100 ms: mem.c's
 *   pogo_mem_admit) is dropped undecoded too, a line a second saying so;
 *   exit reasons, gossip and messages to the node's own machinery ("$rpc",
 *   pg's and the registry's processes) may use the headroom instead; an exit
 *   or DOWN reason too big for the node is replaced
 *   by a text that says so (the link or monitor still fires); gossip that
 *   big is dropped. Then the value is
 *   decoded in strict mode (mem.c): past max_memory the allocation fails and
 *   the message is dropped (conn.c's guard), the process it was for lives.
 * - Crash reasons ({error=, traceback=}) get their metatable back on arrival.
 */
#include <stdio.h>
#include <string.h>

#include "dist/dist.h"

static void id_of(uint32_t node, const pogo_wire_id *w, pogo_id *out) {
  out->serial = w->serial;
  out->node = node;
  out->creation = w->creation;
  out->slot = w->slot;
  out->kind = POGO_KIND_PID;
}

#define DECODE_EXPANSION 8 /* a message may take this many times the frame limit in Lua heap */
#define MAX_GROWTH 80      /* heap bytes a byte of encoding can become, at most */

/* Whether a message to registered name `name` is for the node's own
 * machinery ("$rpc", "$dsup_keeper:...", the registry's and pg's scope
 * processes): it may use the headroom past max_memory, so a node at its
 * limit still answers an rpc and keeps its replicas in step. */
static int for_service(const char *name, size_t len) {
  return (len > 0 && name[0] == '$') || (len >= 3 && memcmp(name, "pg:", 3) == 0) ||
         (len == 13 && memcmp(name, "pogo.registry", 13) == 0);
}

/* Decode exactly one value from a frame's tail: 0; 1 when it would take
 * too much memory (not decoded, logged, *err set); -1 with *err. A
 * `service` value (an exit reason, gossip, a message to the node's
 * machinery) may use the headroom past max_memory; another is admitted
 * first (pogo_mem_admit) and decoded in strict mode. */
static int decode_tail(pogo_dist *d, pogo_conn *c, lua_State *L, const pogo_wire_msg *m, int service,
                       const char **err) {
  pogo_node *N = d->N;
  char cerr[POGO_CODEC_ERRLEN];
  size_t used = 0;
  size_t limit = pogo_mem_limit(N), bound = (size_t)DECODE_EXPANSION * d->max_frame;
  size_t cap = limit && limit < bound ? limit : bound;
  /* no value takes more than MAX_GROWTH heap bytes per byte of its encoding
   * (an empty table in an array slot: 72 for 1): a small one needs no pricing */
  size_t need = m->tail_len <= cap / MAX_GROWTH ? 0 : pogo_codec_estimate(m->tail, m->tail_len);
  if (need != SIZE_MAX && need > cap) {
    pogo_log_line(d, "dropped a value of %zu bytes from %s: decoding it would take about %zu bytes of memory "
                  "(this node allows %zu)", m->tail_len, c->peer_name, need, cap);
    *err = "a value too big for this node's memory";
    return 1;
  }
  /* at max_memory, what does not fit is dropped before it is decoded: each
   * failed allocation would make Lua collect the whole heap (mem.c) */
  if (limit && need == 0 && !service) need = pogo_codec_estimate(m->tail, m->tail_len);
  if (!service && need != SIZE_MAX && !pogo_mem_admit(N, need)) {
    d->full_drops.n++;
    if (pogo_log_due(d, &d->full_drops)) {
      pogo_log_line(d, "dropped a value of %zu bytes from %s (%u since the last such line): this node is at its "
                    "max_memory (%zu bytes)", m->tail_len, c->peer_name, (unsigned)d->full_drops.n, limit);
      d->full_drops.n = 0;
    }
    *err = "no room under max_memory";
    return 1;
  }
  int strict = pogo_mem_strict(N, !service); /* past max_memory, decoding fails (and raises: conn.c's guard) */
  int r = pogo_codec_decode(L, m->tail, m->tail_len, &used, &N->ext, cerr);
  pogo_mem_strict(N, strict);
  if (r != 0) {
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

/* The reason of an EXIT or DOWN, pushed: 0, or -1 (protocol error). One too
 * big for this node's memory is replaced by a text that says so: the link or
 * monitor still fires. */
static int decode_reason(pogo_dist *d, pogo_conn *c, lua_State *L, const pogo_wire_msg *m, const char **err) {
  int r = decode_tail(d, c, L, m, 1, err);
  if (r > 0) {
    lua_pushfstring(L, "a reason of %I bytes, too big for this node's memory", (lua_Integer)m->tail_len);
    r = 0;
  }
  return r;
}

/* The local process a (de)monitor frame names, by pid (`by_pid`) or by
 * registered name, in *b: the pid given, or the named process's (zeroed when
 * no process has that name). */
static void frame_target(pogo_node *N, lua_State *L, const pogo_wire_msg *m, int by_pid, pogo_id *b) {
  if (by_pid) id_of(0, &m->b, b);
  else if (!pogo_names_whereis(N, L, m->name, m->name_len, b)) memset(b, 0, sizeof *b);
}

/* A data frame: 0, or -1 (protocol error, with *err). */
static int on_data(pogo_dist *d, pogo_conn *c, const pogo_wire_msg *m, const char **err) {
  pogo_node *N = d->N;
  lua_State *L = N->L;
  int top = lua_gettop(L);
  if (!lua_checkstack(L, 24)) {
    *err = "Lua stack overflow";
    return -1;
  }
  uint32_t peer = c->peer;
  pogo_id a, b;
  int rc = 0;
  switch (m->kind) {
  case POGO_W_SEND:
    id_of(0, &m->a, &a);
    if (!pogo_proc_get(N, &a)) break;
    if ((rc = decode_tail(d, c, L, m, 0, err)) != 0) { rc = rc > 0 ? 0 : -1; break; } /* too big: dropped */
    pogo_stats_msg_in(c);
    pogo_mailbox_post(N, L, &a, -1);
    break;
  case POGO_W_SEND_NAMED:
    if ((rc = decode_tail(d, c, L, m, for_service(m->name, m->name_len), err)) != 0) {
      rc = rc > 0 ? 0 : -1;
      break;
    }
    if (pogo_names_whereis(N, L, m->name, m->name_len, &a)) pogo_mailbox_post(N, L, &a, -1);
    break;
  case POGO_W_LINK:
    id_of(peer, &m->a, &a);
    id_of(0, &m->b, &b);
    if (!pogo_links_peer_link(N, &a, &b)) {
      lua_pushliteral(L, "noproc");
      pogo_outbound_put_exit(d, L, c, &b, &a, -1, 1);
    }
    break;
  case POGO_W_UNLINK:
    id_of(peer, &m->a, &a);
    id_of(0, &m->b, &b);
    pogo_links_peer_unlink(N, &a, &b);
    break;
  case POGO_W_EXIT:
    id_of(peer, &m->a, &a);
    id_of(0, &m->b, &b);
    if ((rc = decode_reason(d, c, L, m, err)) != 0) break;
    pogo_crash_restore(N, L, -1);
    pogo_links_peer_exit(N, L, &a, &b, -1, (m->flags & POGO_WIRE_LINKED) != 0);
    break;
  case POGO_W_MONITOR:
  case POGO_W_MONITOR_NAME:
    id_of(peer, &m->a, &a);
    frame_target(N, L, m, m->kind == POGO_W_MONITOR, &b);
    if (!pogo_links_peer_monitor(N, &a, m->ref, &b)) {
      lua_pushliteral(L, "noproc");
      pogo_outbound_put_down(d, L, c, &a, m->ref, &b, -1);
    }
    break;
  case POGO_W_DEMONITOR:
  case POGO_W_DEMONITOR_NAME:
    id_of(peer, &m->a, &a);
    frame_target(N, L, m, m->kind == POGO_W_DEMONITOR, &b);
    pogo_links_peer_demonitor(N, &a, m->ref, &b);
    break;
  case POGO_W_DOWN:
    id_of(0, &m->a, &a);
    id_of(peer, &m->b, &b);
    if ((rc = decode_reason(d, c, L, m, err)) != 0) break;
    pogo_crash_restore(N, L, -1);
    pogo_links_peer_down(N, L, &a, m->ref, peer, &b, -1);
    break;
  case POGO_W_PEERS:
    if ((rc = decode_tail(d, c, L, m, 1, err)) != 0) { rc = rc > 0 ? 0 : -1; break; } /* too big: dropped */
    if (lua_type(L, -1) == LUA_TTABLE) pogo_mesh_gossip_in(d, L, c);
    break;
  case POGO_W_LEFT:
    pogo_mesh_left_in(d, L, c, m->name, m->name_len, m->creation);
    break;
  default:
    *err = "unexpected frame kind";
    rc = -1;
    break;
  }
  lua_settop(L, top);
  return rc;
}

/* BYE: the peer closes the connection; its reason (default "shutdown"). */
static void on_bye(pogo_dist *d, pogo_conn *c, const pogo_wire_msg *m) {
  lua_State *L = d->N->L;
  int top = lua_gettop(L);
  char reason[64] = "shutdown";
  char cerr[POGO_CODEC_ERRLEN];
  size_t used;
  if (pogo_codec_decode(L, m->tail, m->tail_len, &used, NULL, cerr) == 0 && lua_type(L, -1) == LUA_TSTRING)
    snprintf(reason, sizeof reason, "%s", lua_tostring(L, -1));
  lua_settop(L, top);
  pogo_mesh_bye(c, reason);
}

int pogo_inbound_frame(pogo_conn *c, const char *p, uint32_t n) {
  pogo_dist *d = c->d;
  pogo_wire_msg m;
  const char *err = NULL;
  if (pogo_wire_parse(p, n, &m, &err) == 0) {
    if (m.kind == POGO_W_TICK) return 0;
    if (m.kind == POGO_W_PING) return pogo_stats_ping_in(c, m.ref), 0;
    if (m.kind == POGO_W_PONG) return pogo_stats_pong_in(c, m.ref), 0;
    if (m.kind == POGO_W_BYE) {
      on_bye(d, c, &m);
      return -1;
    }
    if (on_data(d, c, &m, &err) == 0) return 0;
  }
  if (c->state != CS_UP || c->d != d) return -1;
  pogo_log_at(d, POGO_LOG_WARNING, c->peer_name, "closing link to %s: %s", c->peer_name, err ? err : "protocol error");
  pogo_mesh_conn_lost(c, "protocol_error");
  return -1;
}
