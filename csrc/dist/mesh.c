/*
 * mesh.c: which nodes we are connected to, and how connections come and go:
 * peers, dialing, gossip, heartbeats, node events.
 *
 * Contract
 * - Listening: one TCP listener on host:port (port 0 = ephemeral; the name
 *   carries the real port), at most a batch of accepts per turn of the loop
 *   (acceptor.c: a flood cannot hold the loop). Each accepted connection
 *   gets a slot among the unauthenticated ones (admit.c: bounded per peer
 *   address and in all, the oldest evicted) and is handed to the handshake
 *   (auth.c).
 * - Dialing: seeds (and pogo.connect targets) by address, known nodes by name.
 *   A failed dial is retried after a delay that doubles from backoff_min up to
 *   backoff_max. Seeds are retried forever; a node learned from gossip or a
 *   lost peer (a crash, the network) is retried until `forget_ms` have passed
 *   without success, unless it left on purpose or left DNS (below); a
 *   connect request is tried once. All dials go through one timer, so a dial
 *   never starts inside another callback's work.
 * - One connection per pair of nodes carries the traffic (pogo_peer.up);
 *   the handshake settles duplicates and hands the winner over
 *   (pogo_mesh_conn_up). No dial starts, by name or by address, while that
 *   node's own dial is being answered here (conn_is_for): both sides must
 *   settle on the same connection before either brings one up. Once a
 *   handshake in a node's name ended without proving the cookie (auth.c:
 *   someone else may be sending HELLOs in its name), its pending handshakes
 *   no longer hold our dials back, until it comes up; simultaneous dials are
 *   then settled by the handshake as always.
 * - Gossip: when a connection comes up, each side sends the other the names
 *   of all its other peers and tells every other peer about the new one; a
 *   node learning a name it does not know dials it, so one seed joins the mesh.
 *   Gossip never brings back a node that left on purpose (below): a list may
 *   be older than that node's BYE.
 * - Heartbeats: every heartbeat_ms a PING goes on each up connection this
 *   node dialed, and every few beats on those it accepted (its PONG gives
 *   the round-trip time; while a PING is unanswered, a TICK if the
 *   connection carried nothing since the last beat: stats.c); one silent
 *   for timeout_ms is down
 *   ("timeout"), and so is a handshake not finished in timeout_ms. A graceful
 *   close (BYE, REFUSE) waits at most CLOSE_WAIT_MS for the peer to close its
 *   end.
 * - Node events: when a node's connection comes up, monitor_nodes subscribers
 *   get {"nodeup", node}; when it goes, the runtime applies "noconnection" to
 *   the links and monitors there (pogo_links_node_down), then subscribers get
 *   {"nodedown", node, reason}.
 * - Callbacks from libuv (connect, lookup, dial timer, heartbeat tick) do their
 *   work under pogo_guard: running out of memory there is logged, never
 *   raised through uv_run.
 * - pogo.block(node): never dialed, refused when it dials.
 * - Leaving on purpose: a peer that stops cleanly (BYE "shutdown",
 *   pogo.stop) or disconnects (BYE "disconnect": pogo.disconnect there, an
 *   observer leaving) is not redialed, and this node tells its other up
 *   peers (LEFT: the name and the creation of that incarnation). One that is
 *   not connected to it (it learned the name from gossip, say, and its dial
 *   has not got through) stops dialing it too, as if it had got the BYE
 *   itself (left); one that is connected ignores it (its own BYE will come,
 *   or that node chose to leave only the sender), and so does one whose dial
 *   is in a handshake with another incarnation. LEFTs are not passed on.
 *   Such a node comes back when it connects to us or pogo.connect names it,
 *   not through gossip: a restarted node (same name, new creation) dials
 *   every name it learns, so it rejoins everyone. pogo.disconnect here stops
 *   our dials the same way (not reported: it is this node's choice).
 * - A seed (or an address found in DNS) whose node stopped, or was said to
 *   have left, is still dialed by address, every backoff_max (2000 ms by
 *   default) from the first try on, so a seed that restarts is found again
 *   without a burst of dials while it is away; one that disconnected this
 *   node (BYE "disconnect", or pogo.disconnect here) is not.
 * - Discovered addresses (discovery.c) are seeds while they stay in DNS: a
 *   target per address, marked with the round that last saw it. When a round
 *   no longer lists one, its target goes and, if its node is down, the node
 *   is no longer dialed; a connected node stays, but once lost it is not
 *   redialed (gone_dns), whatever the reason: a node that left DNS is being
 *   retired, and if it lives on it can dial in or come back into DNS.
 * - A dial that reached this node itself (auth.c proves it by the nonce:
 *   pogo_mesh_dial_self): a discovered address is this node's own from then
 *   on: its target goes, one line says so, and DNS rounds skip it (the
 *   last POGO_OWN_MAX such addresses are kept, in the pogo_dist itself:
 *   bounded whatever DNS lists). A seed or a connect request that reached
 *   this node is a failed dial as any other (logged once, a seed retried:
 *   it may be a load balancer whose next dial reaches another node).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dist/dist.h"

#define CLOSE_WAIT_MS 1000

static uint64_t now_ms(pogo_dist *d) { return uv_now(d->N->loop); }

static const char *node_name(pogo_dist *d, uint32_t idx) { return pogo_nodenames_get(d->N, d->N->L, idx); }

pogo_peer *pogo_mesh_peer(pogo_dist *d, uint32_t idx, int create) {
  if (idx == 0) return NULL;
  if (idx >= d->npeers) {
    if (!create) return NULL;
    uint32_t n = d->npeers ? d->npeers : 16;
    while (n <= idx) n *= 2;
    pogo_peer **np = realloc(d->peers, n * sizeof *np);
    if (!np) return NULL;
    memset(np + d->npeers, 0, (n - d->npeers) * sizeof *np);
    d->peers = np;
    d->npeers = n;
  }
  if (!d->peers[idx] && create) {
    pogo_peer *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->backoff = d->backoff_min;
    d->peers[idx] = p;
  }
  return d->peers[idx];
}

pogo_conn *pogo_mesh_up(pogo_dist *d, uint32_t idx) {
  return idx < d->npeers && d->peers[idx] ? d->peers[idx]->up : NULL;
}

static void bump_backoff(pogo_dist *d, uint32_t *backoff, uint64_t *next_at) {
  *next_at = now_ms(d) + *backoff;
  uint64_t b = (uint64_t)*backoff * 2;
  *backoff = b > d->backoff_max ? d->backoff_max : (uint32_t)b;
}

static int is_pending(const pogo_conn *c) { return c->state == CS_CONNECTING || c->state == CS_HANDSHAKE; }

/* Does node name `name` carry the address host:port? */
static int name_is_at(const char *name, size_t len, const char *host, int port) {
  char h[POGO_HOST_MAX];
  int p;
  return name && pogo_addr_of_node(name, len, h, &p) && p == port && strcmp(h, host) == 0;
}

/* Does node idx's name carry the address host:port? */
static int name_at(pogo_dist *d, uint32_t idx, const char *host, int port) {
  const char *name = node_name(d, idx);
  return name && name_is_at(name, strlen(name), host, port);
}

/* Is connection c about node idx (whose address is host:port, if known)? A dial for
 * a target is matched by the target's name once known, else by address; a
 * connection whose peer said who it is (its HELLO), by the address its name
 * carries. So a dial by address does not start while that node's own dial to
 * this one is being answered: the two would settle on different connections,
 * one side bringing up the one the other drops (a nodedown, and what was
 * sent on it lost). */
static int conn_is_for(pogo_dist *d, const pogo_conn *c, uint32_t idx, const char *host, int port) {
  if (idx && (c->peer == idx || c->dial_peer == idx)) return 1;
  if (!c->outgoing) { /* an incoming handshake: by the name its HELLO gave (interned only once proved) */
    if (!c->peer_name) return 0;
    if (idx) return strcmp(c->peer_name, node_name(d, idx)) == 0;
    return host && name_is_at(c->peer_name, c->peer_name_len, host, port);
  }
  if (!idx && host && c->peer && name_at(d, c->peer, host, port)) return 1;
  if (!c->target) return 0;
  if (c->target->name) return idx && strcmp(c->target->name, node_name(d, idx)) == 0;
  return host && c->target->port == port && strcmp(c->target->host, host) == 0;
}

/* Does c hold back our dials to the node it is about? Our own dials do, and
 * so does a node's incoming handshake, unless one in its name ended unproven
 * (pogo_auth_closing): then anyone may be sending HELLOs in its name, and we
 * dial it anyway (simultaneous dials are settled as always). */
/* The peer entry of the name incoming c's HELLO gave, if this node has one
 * (c->peer is 0 when the name was unknown at the HELLO; it may be known since). */
static pogo_peer *claimed_peer(pogo_dist *d, const pogo_conn *c) {
  uint32_t idx = c->peer ? c->peer : pogo_nodenames_find(d->N, d->N->L, c->peer_name, c->peer_name_len);
  return pogo_mesh_peer(d, idx, 0);
}

static int holds_dials(pogo_dist *d, const pogo_conn *c) {
  if (c->outgoing || !c->peer_name) return 1;
  pogo_peer *p = claimed_peer(d, c);
  if (p && p->unproven) return 0;
  for (pogo_target *t = d->targets; t; t = t->next)
    if (t->unproven && !t->name && name_is_at(c->peer_name, c->peer_name_len, t->host, t->port)) return 0;
  return 1;
}

/* Incoming c, in the name its HELLO gave, ends without proving the cookie:
 * that node, and a nameless target (seed, connect) at the address the name
 * carries, are unproven: handshakes in that name hold back no dial of ours
 * until the node comes up (holds_dials). Nothing is interned. */
void pogo_mesh_unproven(pogo_conn *c) {
  pogo_dist *d = c->d;
  if (d->freeing) return;
  pogo_peer *p = claimed_peer(d, c);
  if (p) p->unproven = 1;
  for (pogo_target *t = d->targets; t; t = t->next)
    if (!t->name && name_is_at(c->peer_name, c->peer_name_len, t->host, t->port)) t->unproven = 1;
}

/* A pending connection about node idx other than `except`; outgoing_only: our
 * dials; else also the incoming handshakes that hold our dials back. */
pogo_conn *pogo_mesh_pending_for(pogo_dist *d, uint32_t idx, const char *host, int port, const pogo_conn *except,
                                 int outgoing_only) {
  for (pogo_conn *c = d->conns; c; c = c->next)
    if (c != except && is_pending(c) && (outgoing_only ? c->outgoing : holds_dials(d, c)) &&
        conn_is_for(d, c, idx, host, port))
      return c;
  return NULL;
}

/* ---- connect waiters ---- */

static void notify_waiters(pogo_dist *d, lua_State *L, pogo_target *t, int ok, const char *what) {
  if (t->waiters == LUA_NOREF) return;
  pogo_node *N = d->N;
  int top = lua_gettop(L);
  lua_checkstack(L, 10);
  pogo_node_push_ref(L, t->waiters);
  luaL_unref(L, LUA_REGISTRYINDEX, t->waiters);
  t->waiters = LUA_NOREF;
  int w = lua_gettop(L);
  lua_Integer n = (lua_Integer)lua_rawlen(L, w);
  for (lua_Integer i = 1; i + 1 <= n; i += 2) {
    pogo_id pid;
    lua_rawgeti(L, w, i);
    pogo_proc *p = pogo_ident_is_pid(L, -1, &pid) ? pogo_proc_get(N, &pid) : NULL;
    lua_pop(L, 1);
    if (!p) continue;
    lua_createtable(L, 3, 0);
    lua_rawgeti(L, w, i + 1);
    lua_rawseti(L, -2, 1);
    lua_pushboolean(L, ok);
    lua_rawseti(L, -2, 2);
    lua_pushstring(L, what);
    lua_rawseti(L, -2, 3);
    pogo_mailbox_deliver(N, L, p, -1);
    lua_pop(L, 1);
  }
  lua_settop(L, top);
}

static void target_free(pogo_dist *d, lua_State *L, pogo_target *t) {
  if (t->waiters != LUA_NOREF) luaL_unref(L, LUA_REGISTRYINDEX, t->waiters);
  if (t->dial) t->dial->target = NULL;
  (void)d;
  free(t->name);
  free(t);
}

static void target_remove(pogo_dist *d, lua_State *L, pogo_target *t) {
  for (pogo_target **pp = &d->targets; *pp; pp = &(*pp)->next) {
    if (*pp == t) {
      *pp = t->next;
      break;
    }
  }
  target_free(d, L, t);
}

/* ---- node events: monitor_nodes subscribers and the runtime ---- */

void pogo_mesh_subscribe(pogo_dist *d, lua_State *L, int pid_idx, int flag) {
  pid_idx = lua_absindex(L, pid_idx);
  pogo_node_push_ref(L, d->ref_subs);
  lua_pushvalue(L, pid_idx);
  if (flag) lua_pushboolean(L, 1);
  else lua_pushnil(L);
  lua_rawset(L, -3);
  lua_pop(L, 1);
}

/* Send msg (at -1) to every live subscriber of monitor_nodes. */
static void notify_subscribers(pogo_dist *d, lua_State *L) {
  pogo_node *N = d->N;
  int msg = lua_gettop(L);
  lua_checkstack(L, 8);
  pogo_node_push_ref(L, d->ref_subs);
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
    if (!pogo_ident_is_pid(L, -1, &id) || !pogo_mailbox_post(N, L, &id, msg)) {
      lua_pushvalue(L, -1);
      lua_pushnil(L);
      lua_rawset(L, subs);
    }
    lua_pop(L, 1);
  }
  lua_settop(L, msg);
}

/* {what, node} or, with a reason, {what, node, reason} to subscribers. */
static void node_event(pogo_dist *d, lua_State *L, const char *what, uint32_t idx, const char *reason) {
  int top = lua_gettop(L);
  lua_createtable(L, 3, 0);
  lua_pushstring(L, what);
  lua_rawseti(L, -2, 1);
  lua_pushstring(L, node_name(d, idx));
  lua_rawseti(L, -2, 2);
  if (reason) {
    lua_pushstring(L, reason);
    lua_rawseti(L, -2, 3);
  }
  notify_subscribers(d, L);
  lua_settop(L, top);
}

static void nodeup(pogo_dist *d, lua_State *L, uint32_t idx) { node_event(d, L, "nodeup", idx, NULL); }

/* A loss that is no news: the peer stopped, or was disconnected on purpose. */
static int is_orderly(const char *reason) {
  return strcmp(reason, "shutdown") == 0 || strcmp(reason, "disconnect") == 0;
}

/* The up connection of node idx is gone: the runtime's links and monitors
 * there first, then {"nodedown", node, reason} to subscribers. */
static void nodedown(pogo_dist *d, lua_State *L, uint32_t idx, const char *reason) {
  pogo_links_node_down(d->N, L, idx);
  node_event(d, L, "nodedown", idx, reason);
}

/* ---- dialing ---- */

typedef struct connected {
  pogo_conn *c;
  int status;
} connected;

static int connect_fn(lua_State *L, void *arg) {
  connected *k = arg;
  pogo_conn *c = k->c;
  if (k->status < 0) {
    pogo_mesh_dial_failed(c, L, uv_strerror(k->status));
    return 0;
  }
  c->state = CS_HANDSHAKE;
  c->t_state = c->last_recv = now_ms(c->d);
  if (pogo_conn_read_start(c) != 0) {
    pogo_mesh_dial_failed(c, L, "cannot read from socket");
    return 0;
  }
  pogo_auth_hello(c);
  return 0;
}

static void connect_cb(uv_connect_t *req, int status) {
  pogo_conn *c = req->data;
  if (!c->d || c->state != CS_CONNECTING) return;
  connected k = {c, status};
  pogo_guard(c->d->N, connect_fn, &k, "dialing a node", NULL, 0);
}

static int start_connect(pogo_conn *c, const struct sockaddr *sa) {
  c->creq.data = c;
  return uv_tcp_connect(&c->creq, &c->tcp, sa, connect_cb);
}

static void gai_cb(uv_getaddrinfo_t *req, int status, struct addrinfo *res) {
  pogo_gai *g = (pogo_gai *)req;
  pogo_conn *c = g->c;
  free(g);
  if (c) c->gai = NULL;
  if (!c || !c->d || c->state != CS_CONNECTING) {
    if (res) uv_freeaddrinfo(res);
    return;
  }
  int r = status < 0 || !res ? (status < 0 ? status : UV_EAI_NONAME) : start_connect(c, res->ai_addr);
  if (res) uv_freeaddrinfo(res);
  if (r == 0) return;
  connected k = {c, r};
  pogo_guard(c->d->N, connect_fn, &k, "dialing a node", NULL, 0);
}

static int resolve_now(const char *host, int port, struct sockaddr_storage *ss) {
  if (uv_ip4_addr(host, port, (struct sockaddr_in *)ss) == 0) return 0;
  if (uv_ip6_addr(host, port, (struct sockaddr_in6 *)ss) == 0) return 0;
  return -1;
}

static void format_addr(char *out, size_t cap, const char *host, int port) {
  if (strchr(host, ':')) snprintf(out, cap, "[%s]:%d", host, port);
  else snprintf(out, cap, "%s:%d", host, port);
}

/* Start a dial; failures are reported through dial_failed (now or later). */
static pogo_conn *dial(pogo_dist *d, lua_State *L, const char *host, int port, pogo_target *t, uint32_t peer) {
  pogo_conn *c = pogo_conn_new(d, 1);
  if (!c) return NULL;
  format_addr(c->addr, sizeof c->addr, host, port);
  c->target = t;
  c->dial_peer = peer;
  if (t) t->dial = c;
  if (peer) d->peers[peer]->dial = c;
  struct sockaddr_storage ss;
  int r;
  if (resolve_now(host, port, &ss) == 0) {
    r = start_connect(c, (struct sockaddr *)&ss);
  } else {
    pogo_gai *g = calloc(1, sizeof *g);
    char portstr[8];
    snprintf(portstr, sizeof portstr, "%d", port);
    struct addrinfo hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_socktype = SOCK_STREAM;
    r = g ? 0 : UV_ENOMEM;
    if (g) {
      g->c = c;
      r = uv_getaddrinfo(d->N->loop, &g->req, gai_cb, host, portstr, &hints);
      if (r != 0) free(g);
      else c->gai = g;
    }
  }
  if (r != 0) pogo_mesh_dial_failed(c, L, uv_strerror(r));
  return c;
}

/* A dial of ours ended before its connection came up. */
void pogo_mesh_dial_failed(pogo_conn *c, lua_State *L, const char *reason) {
  pogo_dist *d = c->d;
  const char *who = c->peer_name ? c->peer_name : c->addr;
  pogo_target *t = c->target;
  if (t) {
    t->dial = NULL;
    int again = t->seed || t->found;
    uint32_t idx = t->name ? pogo_nodenames_index(d->N, L, t->name, strlen(t->name)) : 0;
    pogo_peer *p = pogo_mesh_peer(d, idx, 0);
    if (!t->logged)
      pogo_log_at(d, p && p->left ? POGO_LOG_INFO : POGO_LOG_WARNING, who, "cannot connect to %s: %s%s", who, reason,
                  !again ? "" : p && p->left ? " (it stopped; will retry)" : " (will retry)");
    t->logged = 1;
    snprintf(t->err, sizeof t->err, "%s", reason);
    notify_waiters(d, L, t, 0, reason);
    if (again) bump_backoff(d, &t->backoff, &t->next_at);
    else target_remove(d, L, t);
  }
  if (c->dial_peer) {
    pogo_peer *p = d->peers[c->dial_peer];
    p->dial = NULL;
    if (!p->logged && !t) pogo_log_at(d, POGO_LOG_WARNING, who, "cannot connect to %s: %s (will retry)", who, reason);
    p->logged = 1;
    bump_backoff(d, &p->backoff, &p->next_at);
  }
  c->target = NULL;
  c->dial_peer = 0;
  pogo_conn_close(c);
  pogo_mesh_schedule(d);
}

/* Quietly drop a pending dial of ours (another connection will do). */
void pogo_mesh_dial_abandon(pogo_conn *c) {
  pogo_dist *d = c->d;
  if (c->target) c->target->dial = NULL;
  if (c->dial_peer) d->peers[c->dial_peer]->dial = NULL;
  c->target = NULL;
  c->dial_peer = 0;
  pogo_conn_close(c);
}

/* Is host:port an address a dial of ours found to reach this node itself? */
static int is_own(pogo_dist *d, const char *host, int port) {
  uint32_t n = d->nown < POGO_OWN_MAX ? d->nown : POGO_OWN_MAX;
  for (uint32_t i = 0; i < n; i++)
    if (d->own[i].port == port && strcmp(d->own[i].host, host) == 0) return 1;
  return 0;
}

void pogo_mesh_dial_self(pogo_conn *c, lua_State *L) {
  pogo_dist *d = c->d;
  pogo_target *t = c->target;
  /* a seed or a connect request is dialed again (with backoff, logged once):
   * a seed may be a load balancer, whose next dial reaches another node */
  if (!t || !t->found || t->seed) {
    pogo_mesh_dial_failed(c, L, "that address reaches this node itself");
    return;
  }
  /* an address from DNS: this node's own, never dialed again (a ring of the
   * last POGO_OWN_MAX, so a DNS name listing ever more of them cannot grow it) */
  pogo_own_addr *o = &d->own[d->nown++ % POGO_OWN_MAX];
  snprintf(o->host, sizeof o->host, "%s", t->host);
  o->port = t->port;
  pogo_log_at(d, POGO_LOG_NOTICE, t->addr,
              "discovery: %s reaches this node itself (an address of its own): not dialed any more", t->addr);
  notify_waiters(d, L, t, 0, "that address reaches this node itself");
  t->dial = NULL;
  c->target = NULL;
  target_remove(d, L, t);
  pogo_mesh_dial_abandon(c);
  pogo_mesh_schedule(d);
}

/* Do node idx's name and target t name the same node? */
static int target_matches(pogo_dist *d, pogo_target *t, uint32_t idx) {
  if (t->name) return strcmp(t->name, node_name(d, idx)) == 0;
  return name_at(d, idx, t->host, t->port);
}

static int dial_due(pogo_dist *d, pogo_target *t, uint64_t *at) {
  if (t->dial) return 0;
  if (t->name) {
    uint32_t idx = pogo_nodenames_index(d->N, d->N->L, t->name, strlen(t->name));
    pogo_peer *p = pogo_mesh_peer(d, idx, 0);
    if (p && (p->up || p->dial || p->blocked || p->shunned)) return 0;
    if (pogo_mesh_pending_for(d, idx, t->host, t->port, NULL, 0)) return 0;
  } else if (pogo_mesh_pending_for(d, 0, t->host, t->port, NULL, 0)) {
    return 0;
  }
  *at = t->next_at;
  return 1;
}

static int peer_due(pogo_dist *d, uint32_t idx, uint64_t *at) {
  pogo_peer *p = d->peers[idx];
  if (!p || !p->wanted || p->blocked || p->up || p->dial) return 0;
  char host[POGO_HOST_MAX];
  int port = 0;
  const char *name = node_name(d, idx);
  int known = pogo_addr_of_node(name, strlen(name), host, &port);
  if (pogo_mesh_pending_for(d, idx, known ? host : NULL, port, NULL, 0)) return 0;
  *at = p->next_at;
  return 1;
}

static void dial_timer_cb(uv_timer_t *h);

/* Arm the dial timer for the earliest due dial. */
void pogo_mesh_schedule(pogo_dist *d) {
  if (!d->uv || d->stopping) return;
  uint64_t best = UINT64_MAX, at;
  for (pogo_target *t = d->targets; t; t = t->next)
    if (dial_due(d, t, &at) && at < best) best = at;
  for (uint32_t i = 1; i < d->npeers; i++)
    if (peer_due(d, i, &at) && at < best) best = at;
  if (best == UINT64_MAX) {
    uv_timer_stop(&d->uv->dialt);
    d->dial_due = 0;
    return;
  }
  uint64_t now = now_ms(d);
  if (best < now) best = now;
  if (d->dial_due == best && uv_is_active((uv_handle_t *)&d->uv->dialt)) return;
  d->dial_due = best;
  uv_timer_start(&d->uv->dialt, dial_timer_cb, best - now, 0);
}

static int dial_due_fn(lua_State *L, void *arg) {
  pogo_dist *d = arg;
  d->dial_due = 0;
  uint64_t now = now_ms(d), at;
  for (pogo_target *t = d->targets, *next; t; t = next) {
    next = t->next;
    if (dial_due(d, t, &at) && at <= now) dial(d, L, t->host, t->port, t, 0);
  }
  for (uint32_t i = 1; i < d->npeers; i++) {
    if (!peer_due(d, i, &at) || at > now) continue;
    char host[POGO_HOST_MAX];
    int port;
    const char *name = node_name(d, i);
    if (!pogo_addr_of_node(name, strlen(name), host, &port)) {
      d->peers[i]->wanted = 0;
      continue;
    }
    dial(d, L, host, port, NULL, i);
  }
  pogo_mesh_schedule(d);
  return 0;
}

static void dial_timer_cb(uv_timer_t *h) {
  pogo_dist_uv *u = h->data;
  pogo_dist *d = u->d;
  if (!d || d->stopping) return;
  if (pogo_guard(d->N, dial_due_fn, d, "dialing nodes", NULL, 0) != LUA_OK) pogo_mesh_schedule(d);
}

/* ---- connections coming up and going down ---- */

static void send_peers(pogo_dist *d, lua_State *L, pogo_conn *to, uint32_t only) {
  int top = lua_gettop(L);
  lua_checkstack(L, 6);
  lua_newtable(L);
  lua_Integer n = 0;
  if (only) {
    lua_pushstring(L, node_name(d, only));
    lua_rawseti(L, -2, ++n);
  } else {
    for (uint32_t i = 1; i < d->npeers; i++) {
      pogo_peer *p = d->peers[i];
      if (!p || !p->up || p->up == to) continue;
      lua_pushstring(L, node_name(d, i));
      lua_rawseti(L, -2, ++n);
    }
  }
  if (n > 0) {
    size_t start = pogo_conn_begin(to, POGO_W_PEERS, 64);
    char err[POGO_CODEC_ERRLEN];
    if (start != (size_t)-1) {
      if (pogo_codec_encode(L, -1, &to->pk, NULL, "peers", err) != 0) pogo_conn_cancel(to, start);
      else pogo_conn_end(to, start);
    }
  }
  lua_settop(L, top);
}

void pogo_mesh_gossip_in(pogo_dist *d, lua_State *L, pogo_conn *c) {
  (void)c;
  int t = lua_gettop(L);
  lua_Integer n = (lua_Integer)lua_rawlen(L, t);
  int any = 0;
  for (lua_Integer i = 1; i <= n; i++) {
    lua_rawgeti(L, t, i);
    size_t len;
    const char *name = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &len) : NULL;
    if (name && pogo_addr_of_node(name, len, NULL, NULL)) {
      uint32_t idx = pogo_nodenames_index(d->N, L, name, len);
      pogo_peer *p = idx ? pogo_mesh_peer(d, idx, 1) : NULL;
      /* not one that left on purpose: this list may be older than its BYE */
      if (p && !p->blocked && !p->up && !p->wanted && !p->left && !p->shunned) {
        p->wanted = 1;
        p->backoff = d->backoff_min;
        p->next_at = now_ms(d);
        p->down_since = now_ms(d);
        any = 1;
      }
    }
    lua_pop(L, 1);
  }
  if (any) pogo_mesh_schedule(d);
}

/* c is authenticated: it carries the traffic with its node from now on.
 * quiet: it replaces another connection to the same incarnation (no nodeup). */
void pogo_mesh_conn_up(pogo_conn *c, lua_State *L, int quiet) {
  pogo_dist *d = c->d;
  uint32_t idx = c->peer;
  pogo_peer *p = d->peers[idx];
  c->state = CS_UP;
  c->t_state = now_ms(d);
  c->in.max = d->max_frame;
  c->peer_max_frame = c->peer_max_frame < POGO_HS_MAX_FRAME ? POGO_HS_MAX_FRAME : c->peer_max_frame;
  p->up = c;
  pogo_stats_ping(c); /* a first PING: the round-trip time is known at once */
  p->creation = c->peer_creation;
  p->wanted = 1;
  p->shunned = 0;
  p->left = 0;
  p->backoff = d->backoff_min;
  p->logged = 0;
  p->unproven = 0;
  p->down_since = 0;
  free(p->dialer);
  p->dialer = strdup(c->outgoing ? d->name : c->peer_name);
  if (p->dial == c) p->dial = NULL;
  c->dial_peer = 0;
  /* other pending dials of ours to this node are moot */
  for (pogo_conn *o = d->conns, *next; o; o = next) {
    next = o->next;
    if (o != c && o->outgoing && is_pending(o) && conn_is_for(d, o, idx, NULL, 0)) pogo_mesh_dial_abandon(o);
  }
  if (c->target) c->target->dial = NULL;
  c->target = NULL;
  for (pogo_target *t = d->targets, *next; t; t = next) {
    next = t->next;
    if (!target_matches(d, t, idx)) continue;
    if (!t->name) t->name = strdup(c->peer_name);
    t->unproven = 0;
    if (t->dial) pogo_mesh_dial_abandon(t->dial);
    t->logged = 0;
    t->err[0] = '\0';
    t->backoff = d->backoff_min;
    notify_waiters(d, L, t, 1, c->peer_name);
    if (t->found) p->gone_dns = 0;
    if (t->seed || t->found) p->seed = 1;
    else target_remove(d, L, t);
  }
  if (quiet) return;
  pogo_log_at(d, POGO_LOG_INFO, c->peer_name, "connected to %s", c->peer_name);
  send_peers(d, L, c, 0);
  for (uint32_t i = 1; i < d->npeers; i++)
    if (d->peers[i] && d->peers[i]->up && i != idx) send_peers(d, L, d->peers[i]->up, idx);
  nodeup(d, L, idx);
  pogo_mesh_schedule(d);
}

void pogo_mesh_conn_lost(pogo_conn *c, const char *reason) {
  pogo_dist *d = c->d;
  if (!d || c->state == CS_DEAD) return;
  lua_State *L = d->N->L;
  uint32_t idx = c->peer;
  pogo_peer *p = pogo_mesh_peer(d, idx, 0);
  if (c->state == CS_UP && p && p->up == c) {
    p->up = NULL;
    p->down_since = now_ms(d);
    p->next_at = now_ms(d) + p->backoff;
    int undiscovered = p->gone_dns && !p->seed && p->wanted;
    if (undiscovered) p->wanted = 0; /* it left DNS while connected (pogo_mesh_found_sweep) */
    pogo_conn_close(c);
    pogo_log_at(d, is_orderly(reason) ? POGO_LOG_INFO : POGO_LOG_WARNING, node_name(d, idx), "lost %s: %s%s",
                node_name(d, idx), reason, undiscovered ? " (no longer in DNS: not dialed any more)" : "");
    nodedown(d, L, idx, reason);
  } else if (c->outgoing && is_pending(c)) {
    pogo_mesh_dial_failed(c, L, reason);
    return;
  } else {
    pogo_conn_close(c); /* a dial that waited for this one is due again */
  }
  pogo_mesh_schedule(d);
}

/* Node idx stopped cleanly: no more dials by name; its seed entry (by
 * address) waits backoff_max before each try. */
static void left_cleanly(pogo_dist *d, uint32_t idx) {
  pogo_peer *p = d->peers[idx];
  p->wanted = 0;
  p->left = 1;
  for (pogo_target *t = d->targets; t; t = t->next) {
    if (!(t->seed || t->found) || !target_matches(d, t, idx)) continue;
    t->backoff = d->backoff_max;
    t->next_at = now_ms(d) + d->backoff_max;
  }
}

/* Tell every other up peer that incarnation `creation` of node idx left this
 * one on purpose (LEFT), so that those not connected to it stop dialing it:
 * they may have learned its name from gossip and never get its BYE. */
static void report_left(pogo_dist *d, uint32_t idx, uint32_t creation) {
  const char *name = node_name(d, idx);
  size_t len = name ? strlen(name) : 0;
  if (d->stopping || len == 0 || len > POGO_WIRE_NAME_MAX) return;
  for (uint32_t i = 1; i < d->npeers; i++) {
    pogo_conn *u = i != idx && d->peers[i] ? d->peers[i]->up : NULL;
    if (!u || u->state != CS_UP) continue;
    size_t s = pogo_conn_begin(u, POGO_W_LEFT, 4 + 2 + len);
    if (s == (size_t)-1) continue;
    pogo_wire_put_u32(&u->out, creation);
    pogo_wire_put_name(&u->out, name, len);
    pogo_conn_end(u, s);
  }
}

void pogo_mesh_bye(pogo_conn *c, const char *reason) {
  pogo_dist *d = c->d;
  uint32_t idx = c->peer;
  pogo_peer *peer = d->peers[idx];
  int was_up = c->state == CS_UP && peer->up == c, on_purpose = 1;
  if (strcmp(reason, "disconnect") == 0) peer->wanted = 0, peer->shunned = 1;
  else if (strcmp(reason, "shutdown") == 0) left_cleanly(d, idx);
  else on_purpose = 0;
  uint32_t creation = c->peer_creation;
  pogo_mesh_conn_lost(c, reason);
  if (was_up && on_purpose) report_left(d, idx, creation);
}

void pogo_mesh_left_in(pogo_dist *d, lua_State *L, pogo_conn *c, const char *name, size_t len, uint32_t creation) {
  if (d->stopping || !pogo_addr_of_node(name, len, NULL, NULL)) return;
  uint32_t idx = pogo_nodenames_index(d->N, L, name, len);
  if (idx == 0 || idx == c->peer) return; /* this node, or the sender itself */
  pogo_peer *p = pogo_mesh_peer(d, idx, 1);
  /* connected: its own BYE will say if it goes (or this is a newer incarnation) */
  if (!p || p->up || (!p->wanted && (p->left || p->shunned))) return;
  /* our dial is in a handshake with another incarnation: that one did not leave */
  if (p->dial && p->dial->peer_creation && p->dial->peer_creation != creation) return;
  if (p->dial) pogo_mesh_dial_abandon(p->dial);
  if (p->wanted)
    pogo_log_at(d, POGO_LOG_INFO, node_name(d, idx), "%s says %s left: not dialed any more%s", c->peer_name,
                node_name(d, idx), p->seed ? " (but as a seed)" : "");
  left_cleanly(d, idx);
  pogo_mesh_schedule(d);
}

/* ---- listener and timers ---- */

static void on_connection(uv_stream_t *srv, int status) {
  pogo_dist_uv *u = srv->data;
  pogo_dist *d = u->d;
  if (!d || status < 0 || !pogo_acceptor_take(&u->acceptor)) return;
  pogo_conn *c = pogo_conn_new(d, 0);
  if (!c) {
    pogo_acceptor_later(&u->acceptor);
    return;
  }
  if (uv_accept(srv, (uv_stream_t *)&c->tcp) != 0 || d->stopping) {
    pogo_conn_close(c);
    return;
  }
  struct sockaddr_storage ss;
  int len = sizeof ss;
  char ip[64] = "?";
  int port = 0;
  if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) == 0) {
    if (ss.ss_family == AF_INET6) {
      uv_ip6_name((struct sockaddr_in6 *)&ss, ip, sizeof ip);
      port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    } else {
      uv_ip4_name((struct sockaddr_in *)&ss, ip, sizeof ip);
      port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    }
  }
  format_addr(c->addr, sizeof c->addr, ip, port);
  pogo_admit(d, c);
  if (pogo_conn_read_start(c) != 0) pogo_conn_close(c);
}

static int tick_fn(lua_State *L, void *arg) {
  (void)L;
  pogo_dist *d = arg;
  uint64_t now = now_ms(d);
  for (pogo_conn *c = d->conns, *next; c; c = next) {
    next = c->next;
    switch (c->state) {
    case CS_CONNECTING:
    case CS_HANDSHAKE:
      if (now - c->t_state > d->timeout_ms) {
        if (c->outgoing) pogo_mesh_dial_failed(c, d->N->L, "handshake timeout");
        else pogo_mesh_conn_lost(c, "handshake timeout");
      }
      break;
    case CS_UP:
      if (now - c->last_recv > d->timeout_ms) {
        pogo_log_at(d, POGO_LOG_WARNING, c->peer_name, "%s did not answer for %u ms", c->peer_name, d->timeout_ms);
        pogo_mesh_conn_lost(c, "timeout");
      } else {
        pogo_stats_beat(c); /* a PING, or a TICK (stats.c) */
        c->sent = 0;
      }
      break;
    case CS_CLOSING:
      if (now - c->t_state > CLOSE_WAIT_MS) pogo_conn_close(c);
      break;
    default:
      break;
    }
  }
  for (uint32_t i = 1; i < d->npeers; i++) {
    pogo_peer *p = d->peers[i];
    if (p && p->wanted && !p->seed && !p->up && p->down_since && now - p->down_since > d->forget_ms) p->wanted = 0;
  }
  if (d->stopping) pogo_mesh_finish_stop(d);
  return 0;
}

static void tick_cb(uv_timer_t *h) {
  pogo_dist_uv *u = h->data;
  pogo_dist *d = u->d;
  if (!d) return;
  pogo_guard(d->N, tick_fn, d, "heartbeats", NULL, 0);
}

static void uv_block_close_cb(uv_handle_t *h) {
  pogo_dist_uv *u = h->data;
  if (--u->open == 0) free(u);
}

static void close_handle(uv_handle_t *h) {
  if (!uv_is_closing(h)) uv_close(h, uv_block_close_cb);
}

/* Close the node's own handles (listener, timers, prepare, the acceptor's check). */
static void close_uv(pogo_dist *d) {
  pogo_dist_uv *u = d->uv;
  if (!u) return;
  d->uv = NULL;
  u->d = NULL;
  close_handle((uv_handle_t *)&u->listener);
  close_handle((uv_handle_t *)&u->tick);
  close_handle((uv_handle_t *)&u->dialt);
  close_handle((uv_handle_t *)&u->prep);
  close_handle((uv_handle_t *)&u->acceptor.check);
}

int pogo_mesh_start(pogo_dist *d, lua_State *L, char *err, size_t errlen) {
  (void)L;
  pogo_dist_uv *u = calloc(1, sizeof *u);
  if (!u) {
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  uv_loop_t *loop = d->N->loop;
  u->d = d;
  uv_tcp_init(loop, &u->listener);
  uv_timer_init(loop, &u->tick);
  uv_timer_init(loop, &u->dialt);
  uv_prepare_init(loop, &u->prep);
  pogo_acceptor_init(&u->acceptor, loop, (uv_stream_t *)&u->listener, on_connection, u);
  u->listener.data = u->tick.data = u->dialt.data = u->prep.data = u;
  u->open = 5;
  d->uv = u;
  struct sockaddr_storage ss;
  int r = resolve_now(d->host, d->port, &ss);
  if (r != 0) {
    snprintf(err, errlen, "cannot listen on %s: not an IP address", d->host);
    close_uv(d);
    return -1;
  }
  r = uv_tcp_bind(&u->listener, (struct sockaddr *)&ss, 0);
  if (r == 0) r = uv_listen((uv_stream_t *)&u->listener, 128, on_connection);
  if (r != 0) {
    snprintf(err, errlen, "cannot listen on %s:%d: %s", d->host, d->port, uv_strerror(r));
    close_uv(d);
    return -1;
  }
  int len = sizeof ss;
  if (uv_tcp_getsockname(&u->listener, (struct sockaddr *)&ss, &len) == 0)
    d->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                             : ((struct sockaddr_in *)&ss)->sin_port);
  uv_timer_start(&u->tick, tick_cb, d->heartbeat_ms, d->heartbeat_ms);
  return 0;
}

/* ---- requests from Lua ---- */

static pogo_target *target_add(pogo_dist *d, const char *host, int port, int seed) {
  for (pogo_target *t = d->targets; t; t = t->next) {
    if (t->port == port && strcmp(t->host, host) == 0) {
      if (seed) t->seed = 1;
      return t;
    }
  }
  pogo_target *t = calloc(1, sizeof *t);
  if (!t) return NULL;
  snprintf(t->host, sizeof t->host, "%s", host);
  t->port = port;
  format_addr(t->addr, sizeof t->addr, host, port);
  t->seed = (uint8_t)seed;
  t->backoff = d->backoff_min;
  t->next_at = now_ms(d);
  t->waiters = LUA_NOREF;
  t->next = d->targets;
  d->targets = t;
  return t;
}

/* "host:port" or a node name "name@host:port" -> host, port; 0 if invalid. */
static int parse_addr(const char *addr, char host[POGO_HOST_MAX], int *port) {
  size_t len = strlen(addr);
  if (strchr(addr, '@')) return pogo_addr_of_node(addr, len, host, port);
  return pogo_addr_split(addr, len, host, port) == 0;
}

int pogo_mesh_add_seed(pogo_dist *d, const char *addr, char *err, size_t errlen) {
  char host[POGO_HOST_MAX];
  int port;
  if (!parse_addr(addr, host, &port)) {
    snprintf(err, errlen, "invalid seed '%s' (host:port expected)", addr);
    return -1;
  }
  pogo_target *t = target_add(d, host, port, 1);
  if (!t) {
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  pogo_mesh_schedule(d);
  return 0;
}

int pogo_mesh_connect(pogo_dist *d, lua_State *L, const char *addr, int pid_idx, int ref_idx, char *err,
                      size_t errlen) {
  char host[POGO_HOST_MAX];
  int port;
  if (!parse_addr(addr, host, &port)) {
    snprintf(err, errlen, "invalid address '%s' (host:port or a node name expected)", addr);
    return -1;
  }
  if (d->stopping) {
    snprintf(err, errlen, "the node is stopping");
    return -1;
  }
  int by_name = strchr(addr, '@') != NULL;
  uint32_t idx = 0;
  if (by_name) {
    idx = pogo_nodenames_index(d->N, L, addr, strlen(addr));
    if (idx == 0) {
      snprintf(err, errlen, "cannot connect to this node itself");
      return -1;
    }
    pogo_peer *p = pogo_mesh_peer(d, idx, 1);
    if (!p) {
      snprintf(err, errlen, "out of memory");
      return -1;
    }
    if (p->blocked) {
      snprintf(err, errlen, "%s is blocked", addr);
      return -1;
    }
    p->shunned = 0;
    p->left = 0;
    if (p->up) {
      lua_pushstring(L, addr);
      return 1;
    }
  } else {
    for (uint32_t i = 1; i < d->npeers; i++) {
      pogo_peer *p = d->peers[i];
      if (!p || !p->up || !name_at(d, i, host, port)) continue;
      lua_pushstring(L, node_name(d, i));
      return 1;
    }
  }
  pogo_target *t = target_add(d, host, port, 0);
  if (!t) {
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  if (by_name && !t->name) t->name = strdup(addr);
  if (t->waiters == LUA_NOREF) {
    lua_newtable(L);
    t->waiters = luaL_ref(L, LUA_REGISTRYINDEX);
  }
  pogo_node_push_ref(L, t->waiters);
  lua_Integer n = (lua_Integer)lua_rawlen(L, -1);
  lua_pushvalue(L, pid_idx);
  lua_rawseti(L, -2, n + 1);
  lua_pushvalue(L, ref_idx);
  lua_rawseti(L, -2, n + 2);
  lua_pop(L, 1);
  if (!t->dial) t->next_at = now_ms(d);
  pogo_mesh_schedule(d);
  return 0;
}

/* ---- discovery ---- */

int pogo_mesh_found(pogo_dist *d, const char *host, int port, uint32_t gen) {
  if (d->stopping || is_own(d, host, port)) return 0;
  pogo_target *t = target_add(d, host, port, 0);
  if (!t) return -1;
  int fresh = t->found == 0;
  t->found = gen;
  if (!fresh) return 0;
  for (uint32_t i = 1; i < d->npeers; i++) /* back in DNS */
    if (d->peers[i] && d->peers[i]->gone_dns && name_at(d, i, host, port)) d->peers[i]->gone_dns = 0;
  pogo_mesh_schedule(d);
  return 1;
}

void pogo_mesh_found_sweep(pogo_dist *d, lua_State *L, uint32_t gen) {
  for (pogo_target *t = d->targets, *next; t; t = next) {
    next = t->next;
    if (!t->found || t->found == gen) continue;
    t->found = 0;
    if (t->seed) continue; /* also a seed given to pogo.start */
    uint32_t idx = t->name ? pogo_nodenames_index(d->N, L, t->name, strlen(t->name)) : 0;
    pogo_peer *p = pogo_mesh_peer(d, idx, 0);
    if (p) p->seed = 0, p->gone_dns = 1; /* not dialed once lost (pogo_mesh_conn_lost) */
    if (p && !p->up) {
      p->wanted = 0;
      if (p->dial) pogo_mesh_dial_abandon(p->dial);
    }
    pogo_log_at(d, POGO_LOG_INFO, t->name ? t->name : t->addr, "%s is no longer in DNS%s", t->name ? t->name : t->addr,
                p && p->up ? " (still connected)" : ": not dialed any more");
    if (t->dial) pogo_mesh_dial_abandon(t->dial);
    notify_waiters(d, L, t, 0, "no longer in DNS");
    target_remove(d, L, t);
  }
  pogo_mesh_schedule(d);
}

void pogo_mesh_push_targets(pogo_dist *d, lua_State *L) {
  lua_newtable(L);
  lua_Integer n = 0;
  for (pogo_target *t = d->targets; t; t = t->next) {
    lua_createtable(L, 0, 4);
    lua_pushstring(L, t->addr);
    lua_setfield(L, -2, "addr");
    lua_pushboolean(L, t->seed);
    lua_setfield(L, -2, "seed");
    lua_pushboolean(L, t->found != 0);
    lua_setfield(L, -2, "found");
    if (t->name) {
      lua_pushstring(L, t->name);
      lua_setfield(L, -2, "name");
    }
    if (t->err[0]) {
      lua_pushstring(L, t->err);
      lua_setfield(L, -2, "error");
    }
    lua_rawseti(L, -2, ++n);
  }
}

void pogo_mesh_push_own(pogo_dist *d, lua_State *L) {
  uint32_t n = d->nown < POGO_OWN_MAX ? d->nown : POGO_OWN_MAX;
  lua_createtable(L, (int)n, 0);
  for (uint32_t i = 0; i < n; i++) {
    char a[POGO_HOST_MAX + 8];
    format_addr(a, sizeof a, d->own[i].host, d->own[i].port);
    lua_pushstring(L, a);
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
}

/* Close node idx's connections and pending dials; BYE with `reason` on the up one. */
static int drop_node(pogo_dist *d, lua_State *L, uint32_t idx, const char *reason) {
  pogo_peer *p = pogo_mesh_peer(d, idx, 0);
  if (!p) return 0;
  char host[POGO_HOST_MAX];
  int port = 0;
  const char *name = node_name(d, idx);
  pogo_addr_of_node(name, strlen(name), host, &port);
  for (pogo_conn *c = d->conns, *next; c; c = next) {
    next = c->next;
    if (c != p->up && is_pending(c) && conn_is_for(d, c, idx, host, port)) {
      if (c->outgoing) pogo_mesh_dial_abandon(c);
      else pogo_conn_close(c);
    }
  }
  pogo_conn *u = p->up;
  if (!u) return 0;
  p->up = NULL;
  p->down_since = now_ms(d);
  size_t s = pogo_conn_begin(u, POGO_W_BYE, 32);
  if (s != (size_t)-1) {
    char err[POGO_CODEC_ERRLEN];
    lua_pushstring(L, reason);
    if (pogo_codec_encode(L, -1, &u->pk, NULL, "reason", err) != 0) pogo_conn_cancel(u, s);
    else pogo_conn_end(u, s);
    lua_pop(L, 1);
  }
  pogo_conn_close_graceful(u);
  nodedown(d, L, idx, reason);
  return 1;
}

int pogo_mesh_disconnect(pogo_dist *d, lua_State *L, uint32_t idx, const char *reason) {
  pogo_peer *p = pogo_mesh_peer(d, idx, 0);
  if (!p) return 0;
  p->wanted = 0;
  p->shunned = 1;
  int was = drop_node(d, L, idx, reason);
  for (pogo_target *t = d->targets, *next; t; t = next) {
    next = t->next;
    if (!t->seed && target_matches(d, t, idx)) {
      notify_waiters(d, L, t, 0, reason);
      target_remove(d, L, t);
    }
  }
  pogo_mesh_schedule(d);
  return was;
}

void pogo_mesh_block(pogo_dist *d, lua_State *L, uint32_t idx, int flag) {
  pogo_peer *p = pogo_mesh_peer(d, idx, 1);
  if (!p) return;
  if (flag) {
    p->blocked = 1;
    pogo_mesh_disconnect(d, L, idx, "disconnect");
  } else if (p->blocked) {
    p->blocked = 0;
    p->shunned = 0;
    p->left = 0;
    p->wanted = 1;
    p->backoff = d->backoff_min;
    p->next_at = now_ms(d);
    p->down_since = now_ms(d);
    pogo_mesh_schedule(d);
  }
}

void pogo_mesh_stop(pogo_dist *d, lua_State *L, const char *reason) {
  if (d->stopping) return;
  d->stopping = 1;
  if (d->uv) {
    pogo_dist_uv *u = d->uv;
    close_handle((uv_handle_t *)&u->listener);
    uv_timer_stop(&u->dialt);
    /* check closing connections often so the stop does not wait a whole beat */
    uv_timer_start(&u->tick, tick_cb, 50, 50);
  }
  for (uint32_t i = 1; i < d->npeers; i++)
    if (d->peers[i] && d->peers[i]->up) drop_node(d, L, i, reason);
  for (pogo_conn *c = d->conns, *next; c; c = next) {
    next = c->next;
    if (is_pending(c)) {
      if (c->outgoing) pogo_mesh_dial_abandon(c);
      else pogo_conn_close(c);
    }
  }
  while (d->targets) {
    pogo_target *t = d->targets;
    notify_waiters(d, L, t, 0, "shutdown");
    target_remove(d, L, t);
  }
}

/* Free everything the mesh owns, closing connections without notice (node gc). */
void pogo_mesh_free(pogo_dist *d) {
  d->freeing = 1;
  while (d->conns) pogo_conn_close(d->conns);
  close_uv(d);
  while (d->targets) {
    pogo_target *t = d->targets;
    d->targets = t->next;
    target_free(d, d->N->L, t);
  }
  for (uint32_t i = 0; i < d->npeers; i++) {
    if (!d->peers[i]) continue;
    free(d->peers[i]->dialer);
    free(d->peers[i]);
  }
  free(d->peers);
  d->peers = NULL;
  d->npeers = 0;
}

/* Close the handles once a stopped node has no connections left; 1 when done. */
int pogo_mesh_finish_stop(pogo_dist *d) {
  if (!d->stopping || d->conns) return 0;
  close_uv(d);
  return 1;
}
