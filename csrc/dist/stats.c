/*
 * stats.c: what the transport tells tools about its traffic: counters of
 * each link and of the node, and each link's round-trip time.
 *
 * Contract
 * - Counters: process messages (SEND, SEND_NAMED) and frame bytes (length
 *   prefix included, TLS records not) in and out, per up connection (they
 *   start at 0 when a link comes up) and for the node since pogo.start.
 *   Counting is an add in the frame paths (the inline helpers of dist.h).
 * - Round trips: the heartbeat (mesh.c's tick), and the link coming up, send a PING carrying this
 *   node's uv_hrtime; the peer answers at once with a PONG carrying the same
 *   token, and the time since the PING is the link's round-trip time (the
 *   peer's clock never enters the measure). One PING at a time per link:
 *   while one is unanswered, the beat sends a TICK instead if the link was
 *   otherwise silent, as before PINGs existed. A PONG whose token is not the
 *   PING in flight is ignored.
 * - One exchange a beat per link: the node that dialed the link PINGs at
 *   every beat, and its PINGs and the other's PONGs are what each side
 *   hears from the other (a side is down when it is silent for timeout_ms,
 *   whoever pings). The accepting side PINGs only every ACCEPTOR_PING_BEATS
 *   beats, to measure its own round trip, and at the other beats sends a
 *   TICK if it sent nothing since the last one: its PONGs answer the
 *   dialer's PINGs, but a PING queued behind a big frame is read only
 *   after it, and the dialer must still hear from it every beat (a 20 MB
 *   message taking longer than timeout_ms to arrive and be dropped took
 *   the link down under ASan without the TICK). Both sides PINGing at every beat
 *   woke every node twice a beat per peer: at 50 nodes, 140 wake-ups a
 *   second and about 1 % of a core for an idle node. Kept: the last round trip and a moving
 *   average (each new sample weighs 1/8), both in ns. The time includes
 *   the time a busy peer took to read the PING, so it shows a slow peer too.
 * - core.dist_stats() -> {messages_in =, messages_out =, bytes_in =,
 *   bytes_out =, links = {[node] = {messages_in =, messages_out =,
 *   bytes_in =, bytes_out =, rtt_ms =, rtt_avg_ms =, up_ms =}}} (rtt_*
 *   absent until a PONG came back; up_ms: how long the link has been up).
 *   Empty counters before pogo.start.
 */
#include <string.h>

#include "dist/dist.h"

static void put_token(pogo_conn *c, uint8_t kind, uint64_t token) {
  size_t s = pogo_conn_begin(c, kind, 8);
  if (s == (size_t)-1) return;
  pogo_wire_put_u64(&c->out, token);
  pogo_conn_end(c, s);
}

/* how often the accepting side of a link measures its round trip, in beats */
#define ACCEPTOR_PING_BEATS 8

void pogo_stats_ping(pogo_conn *c) {
  if (c->ping_at != 0) return;
  uint64_t t = uv_hrtime();
  c->ping_at = t ? t : 1;
  c->quiet_beats = 0;
  put_token(c, POGO_W_PING, c->ping_at);
}

void pogo_stats_beat(pogo_conn *c) {
  if (c->ping_at == 0 && (c->outgoing || ++c->quiet_beats >= ACCEPTOR_PING_BEATS)) {
    pogo_stats_ping(c);
  } else if (!c->sent) {
    size_t s = pogo_conn_begin(c, POGO_W_TICK, 0);
    if (s != (size_t)-1) pogo_conn_end(c, s);
  }
}

void pogo_stats_ping_in(pogo_conn *c, uint64_t token) { put_token(c, POGO_W_PONG, token); }

void pogo_stats_pong_in(pogo_conn *c, uint64_t token) {
  if (token == 0 || token != c->ping_at) return;
  c->ping_at = 0;
  uint64_t rtt = uv_hrtime() - token;
  c->rtt_ns = rtt;
  c->rtt_avg_ns = c->rtt_avg_ns ? c->rtt_avg_ns - c->rtt_avg_ns / 8 + rtt / 8 : rtt;
}

static void set_counters(lua_State *L, const pogo_link_stats *s) {
  lua_pushinteger(L, (lua_Integer)s->msgs_in);
  lua_setfield(L, -2, "messages_in");
  lua_pushinteger(L, (lua_Integer)s->msgs_out);
  lua_setfield(L, -2, "messages_out");
  lua_pushinteger(L, (lua_Integer)s->bytes_in);
  lua_setfield(L, -2, "bytes_in");
  lua_pushinteger(L, (lua_Integer)s->bytes_out);
  lua_setfield(L, -2, "bytes_out");
}

/* dist_stats() -> see the contract */
static int l_dist_stats(lua_State *L) {
  pogo_node *N = POGO_NODE(L);
  pogo_dist *d = pogo_dist_of(N);
  pogo_link_stats zero;
  memset(&zero, 0, sizeof zero);
  lua_createtable(L, 0, 5);
  set_counters(L, d ? &d->stats : &zero);
  lua_newtable(L);
  for (uint32_t i = 1; d && i < d->npeers; i++) {
    pogo_conn *c = d->peers[i] ? d->peers[i]->up : NULL;
    if (!c || c->state != CS_UP) continue;
    lua_createtable(L, 0, 7);
    set_counters(L, &c->stats);
    if (c->rtt_ns) {
      lua_pushnumber(L, (double)c->rtt_ns / 1e6);
      lua_setfield(L, -2, "rtt_ms");
      lua_pushnumber(L, (double)c->rtt_avg_ns / 1e6);
      lua_setfield(L, -2, "rtt_avg_ms");
    }
    lua_pushinteger(L, (lua_Integer)(uv_now(N->loop) - c->t_state));
    lua_setfield(L, -2, "up_ms");
    lua_setfield(L, -2, pogo_nodenames_get(N, L, i));
  }
  lua_setfield(L, -2, "links");
  return 1;
}

void pogo_stats_register(lua_State *L) {
  static const luaL_Reg fns[] = {{"dist_stats", l_dist_stats}, {NULL, NULL}};
  pogo_node_setfuncs(L, fns);
}
