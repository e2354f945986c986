/*
 * mesh.c: which nodes we are linked to, and how links come and go.
 *
 * Contract
 * - Listening: one TCP listener on host:port (port 0 = ephemeral; the name
 *   carries the real port).
 * - Dialing: seeds (and pogo.connect targets) by address, known nodes by name.
 *   A failed dial is retried after a delay that doubles from backoff_min up to
 *   backoff_max. Seeds are retried forever; a node learned from gossip or a
 *   lost peer is retried until `forget_ms` have passed without success; a
 *   connect request is tried once. All dials go through one timer, so a dial
 *   never starts inside another callback's work.
 * - Handshake (handshake.h): HELLO, CHALLENGE, RESPONSE, ACK; the acceptor
 *   checks the dialer's proof first and refuses a wrong cookie, both sides log
 *   why, and no process ever sees a peer that did not prove the cookie. Until
 *   then frames are limited to 4 KiB, a connection has timeout_ms to finish,
 *   and at most MAX_INCOMING_HANDSHAKES unauthenticated connections are held.
 * - One link per pair of nodes. Simultaneous dials are resolved when the
 *   acceptor reads HELLO: if it is itself dialing that node, the dial started
 *   by the node with the smaller name wins (the loser is refused with
 *   "simultaneous" or abandoned quietly). A second link that still manages to
 *   authenticate (e.g. a seed spelled as a host name) is resolved the same
 *   way then; a new incarnation of a node (other creation) replaces the old
 *   link.
 * - Gossip: when a link comes up, each side sends the other the names of all
 *   its other peers and tells every other peer about the new one; a node
 *   learning a name it does not know dials it, so one seed joins the mesh.
 * - Heartbeats: every heartbeat_ms a TICK goes on each link that carried
 *   nothing since the last beat; a link silent for timeout_ms is down
 *   ("timeout"). A graceful close (BYE, REFUSE) waits at most
 *   CLOSE_WAIT_MS for the peer to close its end.
 * - pogo.block(node): never dialed, refused when it dials; pogo.disconnect
 *   and a peer's BYE "disconnect" stop redialing until the name is learned
 *   again (gossip, connect).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dist_int.h"

#define CLOSE_WAIT_MS 1000
#define MAX_INCOMING_HANDSHAKES 128 /* unauthenticated connections held at once */

void pogo_dist_logf(pogo_dist *d, const char *fmt, ...) {
  if (!d->log) return;
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  fprintf(stderr, "pogo[%s]: %s\n", d->name ? d->name : "?", buf);
  fflush(stderr);
}

static uint64_t now_ms(pogo_dist *d) { return uv_now(d->N->loop); }

static const char *node_name(pogo_dist *d, uint32_t idx) { return pogo_node_name(d->N, d->N->L, idx); }

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

pogo_link *pogo_mesh_up(pogo_dist *d, uint32_t idx) {
  return idx < d->npeers && d->peers[idx] ? d->peers[idx]->up : NULL;
}

static void schedule(pogo_dist *d);

static void bump_backoff(pogo_dist *d, uint32_t *backoff, uint64_t *next_at) {
  *next_at = now_ms(d) + *backoff;
  uint64_t b = (uint64_t)*backoff * 2;
  *backoff = b > d->backoff_max ? d->backoff_max : (uint32_t)b;
}

static int is_pending(const pogo_link *l) { return l->state == LS_CONNECTING || l->state == LS_HANDSHAKE; }

/* Is link l about node idx (whose address is host:port, if known)? A dial for
 * a target is matched by the target's name once known, else by address. */
static int link_is_for(pogo_dist *d, const pogo_link *l, uint32_t idx, const char *host, int port) {
  if (idx && (l->peer == idx || l->dial_peer == idx)) return 1;
  if (!l->target) return 0;
  if (l->target->name) return idx && strcmp(l->target->name, node_name(d, idx)) == 0;
  return host && l->target->port == port && strcmp(l->target->host, host) == 0;
}

/* A pending link about node idx other than `except`; outgoing_only: our dials. */
static pogo_link *pending_for(pogo_dist *d, uint32_t idx, const char *host, int port, const pogo_link *except,
                              int outgoing_only) {
  for (pogo_link *l = d->links; l; l = l->next)
    if (l != except && is_pending(l) && (!outgoing_only || l->outgoing) && link_is_for(d, l, idx, host, port))
      return l;
  return NULL;
}

/* ---- connect waiters ---- */

static void notify_waiters(pogo_dist *d, lua_State *L, pogo_target *t, int ok, const char *what) {
  if (t->waiters == LUA_NOREF) return;
  pogo_node *N = d->N;
  int top = lua_gettop(L);
  lua_checkstack(L, 10);
  pogo_push_ref(L, t->waiters);
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

/* ---- dialing ---- */

static void dial_failed(pogo_link *l, lua_State *L, const char *reason);

/* The fields of this node's hello and challenge that say who it is. */
static void hello_init(pogo_dist *d, pogo_hs_hello *h) {
  memset(h, 0, sizeof *h);
  h->version = POGO_PROTO_VERSION;
  h->creation = d->N->creation;
  h->max_frame = d->max_frame;
  h->name = d->name;
  h->name_len = d->name_len;
}

static void send_hello(pogo_link *l) {
  pogo_dist *d = l->d;
  pogo_hs_hello h;
  hello_init(d, &h);
  if (l->dial_peer) {
    h.to = node_name(d, l->dial_peer);
    h.to_len = strlen(h.to);
  } else if (l->target && l->target->name) {
    h.to = l->target->name;
    h.to_len = strlen(h.to);
  }
  if (pogo_hs_put_hello(&l->out, POGO_HS_HELLO, &h) != 0) {
    l->fail = "out of memory";
    pogo_link_dirty(l);
    return;
  }
  l->hs_step = 1;
  pogo_link_dirty(l);
}

static void connect_cb(uv_connect_t *req, int status) {
  pogo_link *l = req->data;
  if (!l->d || l->state != LS_CONNECTING) return;
  lua_State *L = l->d->N->L;
  if (status < 0) {
    dial_failed(l, L, uv_strerror(status));
    return;
  }
  l->state = LS_HANDSHAKE;
  l->t_state = l->last_recv = now_ms(l->d);
  if (pogo_link_read_start(l) != 0) {
    dial_failed(l, L, "cannot read from socket");
    return;
  }
  send_hello(l);
}

static int start_connect(pogo_link *l, const struct sockaddr *sa) {
  l->creq.data = l;
  return uv_tcp_connect(&l->creq, &l->tcp, sa, connect_cb);
}

static void gai_cb(uv_getaddrinfo_t *req, int status, struct addrinfo *res) {
  pogo_gai *g = (pogo_gai *)req;
  pogo_link *l = g->l;
  free(g);
  if (l) l->gai = NULL;
  if (!l || !l->d || l->state != LS_CONNECTING) {
    if (res) uv_freeaddrinfo(res);
    return;
  }
  int r = status < 0 || !res ? (status < 0 ? status : UV_EAI_NONAME) : start_connect(l, res->ai_addr);
  if (res) uv_freeaddrinfo(res);
  if (r != 0) dial_failed(l, l->d->N->L, uv_strerror(r));
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
static pogo_link *dial(pogo_dist *d, lua_State *L, const char *host, int port, pogo_target *t, uint32_t peer) {
  pogo_link *l = pogo_link_new(d, 1);
  if (!l) return NULL;
  format_addr(l->addr, sizeof l->addr, host, port);
  l->target = t;
  l->dial_peer = peer;
  if (t) t->dial = l;
  if (peer) d->peers[peer]->dial = l;
  struct sockaddr_storage ss;
  int r;
  if (resolve_now(host, port, &ss) == 0) {
    r = start_connect(l, (struct sockaddr *)&ss);
  } else {
    pogo_gai *g = calloc(1, sizeof *g);
    char portstr[8];
    snprintf(portstr, sizeof portstr, "%d", port);
    struct addrinfo hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_socktype = SOCK_STREAM;
    r = g ? 0 : UV_ENOMEM;
    if (g) {
      g->l = l;
      r = uv_getaddrinfo(d->N->loop, &g->req, gai_cb, host, portstr, &hints);
      if (r != 0) free(g);
      else l->gai = g;
    }
  }
  if (r != 0) dial_failed(l, L, uv_strerror(r));
  return l;
}

/* A dial of ours ended before the link came up. */
static void dial_failed(pogo_link *l, lua_State *L, const char *reason) {
  pogo_dist *d = l->d;
  const char *who = l->peer_name ? l->peer_name : l->addr;
  pogo_target *t = l->target;
  if (t) {
    t->dial = NULL;
    if (!t->logged) pogo_dist_logf(d, "cannot connect to %s: %s%s", who, reason, t->seed ? " (will retry)" : "");
    t->logged = 1;
    notify_waiters(d, L, t, 0, reason);
    if (t->seed) bump_backoff(d, &t->backoff, &t->next_at);
    else target_remove(d, L, t);
  }
  if (l->dial_peer) {
    pogo_peer *p = d->peers[l->dial_peer];
    p->dial = NULL;
    if (!p->logged && !t) pogo_dist_logf(d, "cannot connect to %s: %s (will retry)", who, reason);
    p->logged = 1;
    bump_backoff(d, &p->backoff, &p->next_at);
  }
  l->target = NULL;
  l->dial_peer = 0;
  pogo_link_close(l);
  schedule(d);
}

/* Quietly drop a pending dial of ours (another link will do). */
static void dial_abandon(pogo_link *l) {
  pogo_dist *d = l->d;
  if (l->target) l->target->dial = NULL;
  if (l->dial_peer) d->peers[l->dial_peer]->dial = NULL;
  l->target = NULL;
  l->dial_peer = 0;
  pogo_link_close(l);
}

/* Do node idx's name and target t name the same node? */
static int target_matches(pogo_dist *d, pogo_target *t, uint32_t idx) {
  const char *name = node_name(d, idx);
  if (t->name) return strcmp(t->name, name) == 0;
  char host[POGO_HOST_MAX];
  int port;
  return pogo_name_valid(name, strlen(name), host, &port) && port == t->port && strcmp(host, t->host) == 0;
}

static int dial_due(pogo_dist *d, pogo_target *t, uint64_t *at) {
  if (t->dial) return 0;
  if (t->name) {
    uint32_t idx = pogo_node_index(d->N, d->N->L, t->name, strlen(t->name));
    pogo_peer *p = pogo_mesh_peer(d, idx, 0);
    if (p && (p->up || p->dial || p->blocked || p->shunned)) return 0;
    if (pending_for(d, idx, t->host, t->port, NULL, 0)) return 0;
  } else if (pending_for(d, 0, t->host, t->port, NULL, 0)) {
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
  int known = pogo_name_valid(name, strlen(name), host, &port);
  if (pending_for(d, idx, known ? host : NULL, port, NULL, 0)) return 0;
  *at = p->next_at;
  return 1;
}

static void dial_timer_cb(uv_timer_t *h);

/* Arm the dial timer for the earliest due dial. */
static void schedule(pogo_dist *d) {
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

static void dial_timer_cb(uv_timer_t *h) {
  pogo_dist_uv *u = h->data;
  pogo_dist *d = u->d;
  if (!d || d->stopping) return;
  lua_State *L = d->N->L;
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
    if (!pogo_name_valid(name, strlen(name), host, &port)) {
      d->peers[i]->wanted = 0;
      continue;
    }
    dial(d, L, host, port, NULL, i);
  }
  schedule(d);
}

/* ---- links coming up and going down ---- */

static void send_peers(pogo_dist *d, lua_State *L, pogo_link *to, uint32_t only) {
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
    size_t start = pogo_link_begin(to, POGO_W_PEERS, 64);
    char err[POGO_CODEC_ERRLEN];
    if (start != (size_t)-1) {
      if (pogo_codec_encode(L, -1, &to->pk, NULL, "peers", err) != 0) pogo_link_cancel(to, start);
      else pogo_link_end(to, start);
    }
  }
  lua_settop(L, top);
}

void pogo_mesh_gossip_in(pogo_dist *d, lua_State *L, pogo_link *l) {
  (void)l;
  int t = lua_gettop(L);
  lua_Integer n = (lua_Integer)lua_rawlen(L, t);
  int any = 0;
  for (lua_Integer i = 1; i <= n; i++) {
    lua_rawgeti(L, t, i);
    size_t len;
    const char *name = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &len) : NULL;
    if (name && pogo_name_valid(name, len, NULL, NULL)) {
      uint32_t idx = pogo_node_index(d->N, L, name, len);
      pogo_peer *p = idx ? pogo_mesh_peer(d, idx, 1) : NULL;
      if (p && !p->blocked && !p->up && !p->wanted) {
        p->wanted = 1;
        p->shunned = 0;
        p->backoff = d->backoff_min;
        p->next_at = now_ms(d);
        p->down_since = now_ms(d);
        any = 1;
      }
    }
    lua_pop(L, 1);
  }
  if (any) schedule(d);
}

/* l is authenticated: it carries the traffic with its node from now on.
 * quiet: it replaces another link to the same incarnation (no nodeup). */
static void go_up(pogo_link *l, lua_State *L, int quiet) {
  pogo_dist *d = l->d;
  uint32_t idx = l->peer;
  pogo_peer *p = d->peers[idx];
  l->state = LS_UP;
  l->t_state = now_ms(d);
  l->in.max = d->max_frame;
  l->peer_max_frame = l->peer_max_frame < POGO_HS_MAX_FRAME ? POGO_HS_MAX_FRAME : l->peer_max_frame;
  p->up = l;
  p->creation = l->peer_creation;
  p->wanted = 1;
  p->shunned = 0;
  p->backoff = d->backoff_min;
  p->logged = 0;
  p->down_since = 0;
  free(p->dialer);
  p->dialer = strdup(l->outgoing ? d->name : l->peer_name);
  if (p->dial == l) p->dial = NULL;
  l->dial_peer = 0;
  /* other pending dials of ours to this node are moot */
  for (pogo_link *o = d->links, *next; o; o = next) {
    next = o->next;
    if (o != l && o->outgoing && is_pending(o) && link_is_for(d, o, idx, NULL, 0)) dial_abandon(o);
  }
  if (l->target) l->target->dial = NULL;
  l->target = NULL;
  for (pogo_target *t = d->targets, *next; t; t = next) {
    next = t->next;
    if (!target_matches(d, t, idx)) continue;
    if (!t->name) t->name = strdup(l->peer_name);
    if (t->dial) dial_abandon(t->dial);
    t->logged = 0;
    t->backoff = d->backoff_min;
    notify_waiters(d, L, t, 1, l->peer_name);
    if (t->seed) p->seed = 1;
    else target_remove(d, L, t);
  }
  if (quiet) return;
  pogo_dist_logf(d, "connected to %s", l->peer_name);
  send_peers(d, L, l, 0);
  for (uint32_t i = 1; i < d->npeers; i++)
    if (d->peers[i] && d->peers[i]->up && i != idx) send_peers(d, L, d->peers[i]->up, idx);
  pogo_dist_nodeup(d, L, idx);
  schedule(d);
}

void pogo_mesh_link_lost(pogo_link *l, const char *reason) {
  pogo_dist *d = l->d;
  if (!d || l->state == LS_DEAD) return;
  lua_State *L = d->N->L;
  uint32_t idx = l->peer;
  pogo_peer *p = pogo_mesh_peer(d, idx, 0);
  if (l->state == LS_UP && p && p->up == l) {
    p->up = NULL;
    p->down_since = now_ms(d);
    p->next_at = now_ms(d) + p->backoff;
    pogo_link_close(l);
    pogo_dist_logf(d, "lost %s: %s", node_name(d, idx), reason);
    pogo_dist_nodedown(d, L, idx, reason);
  } else if (l->outgoing && is_pending(l)) {
    dial_failed(l, L, reason);
    return;
  } else {
    pogo_link_close(l); /* a dial that waited for this one is due again */
  }
  schedule(d);
}

/* ---- handshake ---- */

static int refuse(pogo_link *l, const char *reason) {
  pogo_dist *d = l->d;
  pogo_hs_put_refuse(&l->out, reason);
  pogo_link_close_graceful(l);
  schedule(d);
  return -1;
}

/* Fail our handshake (either side): log and close. */
static int hs_fail(pogo_link *l, const char *reason) {
  const char *who = l->peer_name ? l->peer_name : l->addr;
  if (l->outgoing) {
    dial_failed(l, l->d->N->L, reason);
  } else {
    pogo_dist *d = l->d;
    pogo_dist_logf(d, "handshake with %s failed: %s", who, reason);
    pogo_link_close(l);
    schedule(d);
  }
  return -1;
}

static int set_peer(pogo_link *l, const pogo_hs_hello *h) {
  pogo_dist *d = l->d;
  free(l->peer_name);
  l->peer_name = malloc(h->name_len + 1);
  if (!l->peer_name) return -1;
  memcpy(l->peer_name, h->name, h->name_len);
  l->peer_name[h->name_len] = '\0';
  l->peer_name_len = h->name_len;
  l->peer_creation = h->creation;
  l->peer_max_frame = h->max_frame;
  l->peer = pogo_node_index(d->N, d->N->L, h->name, h->name_len);
  return pogo_mesh_peer(d, l->peer, 1) ? 0 : -1;
}

static int digest(pogo_link *l, char role, unsigned char out[POGO_HS_DIGEST]) {
  pogo_dist *d = l->d;
  int dialer = l->outgoing;
  return pogo_hs_digest(d->cookie, d->cookie_len, role, l->nonce_a, l->nonce_d,
                        dialer ? d->N->creation : l->peer_creation, dialer ? l->peer_creation : d->N->creation,
                        dialer ? d->name : l->peer_name, dialer ? d->name_len : l->peer_name_len,
                        dialer ? l->peer_name : d->name, dialer ? l->peer_name_len : d->name_len, out);
}

/* Both sides proved the cookie. If another link to that node is up, keep one:
 * returns 0 to bring l up, 1 to bring it up in place of the other one without
 * telling anyone (same node, same incarnation), -1 if l was dropped. */
static int settle_duplicate(pogo_link *l) {
  pogo_dist *d = l->d;
  pogo_peer *p = d->peers[l->peer];
  pogo_link *u = p->up;
  if (!u) return 0;
  if (u->peer_creation != l->peer_creation) { /* a new incarnation */
    pogo_mesh_link_lost(u, "connection_closed");
    return 0;
  }
  pogo_dist_logf(d, "a second link to %s came up; keeping one", l->peer_name);
  if (!l->outgoing) return refuse(l, "duplicate");
  /* keep the link dialed by the node with the smaller name */
  if (!u->outgoing && strcmp(d->name, l->peer_name) > 0) {
    dial_abandon(l);
    return -1;
  }
  p->up = NULL;
  pogo_link_close(u);
  return 1;
}

static int on_hello(pogo_link *l, const char *p, uint32_t n) {
  pogo_dist *d = l->d;
  pogo_hs_hello h;
  const char *err;
  char reason[POGO_HS_REASON_MAX + 1];
  if ((unsigned char)p[0] != POGO_HS_HELLO) return hs_fail(l, "unexpected first message");
  if (pogo_hs_parse_hello(p, n, POGO_HS_HELLO, &h, &err) != 0) return hs_fail(l, err);
  if (h.version != POGO_PROTO_VERSION) {
    snprintf(reason, sizeof reason, "protocol version mismatch (this node speaks %d, the dialer %d)",
             POGO_PROTO_VERSION, h.version);
    pogo_dist_logf(d, "refused %s: %s", l->addr, reason);
    return refuse(l, reason);
  }
  if (h.name_len == d->name_len && memcmp(h.name, d->name, h.name_len) == 0) {
    pogo_dist_logf(d, "refused %s: it uses this node's name", l->addr);
    return refuse(l, "node name already in use");
  }
  if (h.to_len && (h.to_len != d->name_len || memcmp(h.to, d->name, h.to_len) != 0)) {
    snprintf(reason, sizeof reason, "wrong node: this is %s", d->name);
    return refuse(l, reason);
  }
  if (d->stopping) return refuse(l, "shutting down");
  if (set_peer(l, &h) != 0) return hs_fail(l, "out of memory");
  pogo_peer *peer = d->peers[l->peer];
  if (peer->blocked) {
    pogo_dist_logf(d, "refused %s: blocked", l->peer_name);
    return refuse(l, "blocked");
  }
  /* simultaneous dials: the dial of the node with the smaller name wins */
  char host[POGO_HOST_MAX];
  int port = 0;
  pogo_name_valid(l->peer_name, l->peer_name_len, host, &port);
  pogo_link *mine = pending_for(d, l->peer, host, port, l, 1);
  if (mine) {
    if (strcmp(d->name, l->peer_name) < 0) return refuse(l, "simultaneous");
    if (mine->target && !mine->target->name) mine->target->name = strdup(l->peer_name);
    dial_abandon(mine);
  }
  /* an older incoming handshake from the same node is stale */
  for (pogo_link *o = d->links, *next; o; o = next) {
    next = o->next;
    if (o != l && !o->outgoing && o->state == LS_HANDSHAKE && o->peer == l->peer) pogo_link_close(o);
  }
  pogo_hs_hello c;
  hello_init(d, &c);
  if (pogo_hs_random(l->nonce_a, POGO_HS_NONCE) != 0) return hs_fail(l, "no random bytes");
  memcpy(c.nonce, l->nonce_a, POGO_HS_NONCE);
  if (pogo_hs_put_hello(&l->out, POGO_HS_CHALLENGE, &c) != 0) return hs_fail(l, "out of memory");
  pogo_link_dirty(l);
  l->hs_step = 1;
  return 0;
}

static int on_refuse(pogo_link *l, const char *p, uint32_t n) {
  pogo_dist *d = l->d;
  char reason[POGO_HS_REASON_MAX + 1];
  const char *err;
  if (pogo_hs_parse_refuse(p, n, reason, &err) != 0) return hs_fail(l, err);
  if (!l->outgoing) {
    pogo_dist_logf(d, "handshake with %s failed: refused: %s", l->peer_name ? l->peer_name : l->addr, reason);
    pogo_link_close(l);
    schedule(d);
    return -1;
  }
  if (strcmp(reason, "simultaneous") == 0) {
    dial_abandon(l); /* the peer's own dial brings the link up */
    schedule(d);
    return -1;
  }
  if (strncmp(reason, "wrong node", 10) == 0 && l->target && l->target->name) {
    free(l->target->name); /* someone else lives at that address now */
    l->target->name = NULL;
  }
  char msg[POGO_HS_REASON_MAX + 32];
  snprintf(msg, sizeof msg, "refused by peer: %s", reason);
  return hs_fail(l, msg);
}

static int on_handshake(pogo_link *l, const char *p, uint32_t n) {
  pogo_dist *d = l->d;
  const char *err;
  unsigned char dg[POGO_HS_DIGEST], want[POGO_HS_DIGEST];
  if ((unsigned char)p[0] == POGO_HS_REFUSE && (l->outgoing || l->hs_step > 0)) return on_refuse(l, p, n);
  if (!l->outgoing) {
    if (l->hs_step == 0) return on_hello(l, p, n);
    if (pogo_hs_parse_response(p, n, l->nonce_d, dg, &err) != 0) return hs_fail(l, err);
    if (digest(l, 'D', want) != 0) return hs_fail(l, "HMAC failed");
    if (!pogo_hs_digest_eq(dg, want)) {
      pogo_dist_logf(d, "refused %s (%s): authentication failed (wrong cookie?)", l->peer_name, l->addr);
      return refuse(l, "authentication failed (wrong cookie?)");
    }
    int how = settle_duplicate(l);
    if (how < 0) return -1;
    if (digest(l, 'A', dg) != 0) return hs_fail(l, "HMAC failed");
    if (pogo_hs_put_ack(&l->out, dg) != 0) return hs_fail(l, "out of memory");
    pogo_link_dirty(l);
    go_up(l, d->N->L, how);
    return 0;
  }
  if (l->hs_step == 1) {
    pogo_hs_hello h;
    if (pogo_hs_parse_hello(p, n, POGO_HS_CHALLENGE, &h, &err) != 0) return hs_fail(l, err);
    if (h.version != POGO_PROTO_VERSION) return hs_fail(l, "protocol version mismatch");
    if (h.name_len == d->name_len && memcmp(h.name, d->name, h.name_len) == 0) return hs_fail(l, "connected to itself");
    if (set_peer(l, &h) != 0) return hs_fail(l, "out of memory");
    if (l->dial_peer && l->dial_peer != l->peer) return hs_fail(l, "another node answers at that address");
    if (d->peers[l->peer]->blocked) return hs_fail(l, "blocked");
    if (l->target && !l->target->name) l->target->name = strdup(l->peer_name);
    memcpy(l->nonce_a, h.nonce, POGO_HS_NONCE);
    if (pogo_hs_random(l->nonce_d, POGO_HS_NONCE) != 0) return hs_fail(l, "no random bytes");
    if (digest(l, 'D', dg) != 0) return hs_fail(l, "HMAC failed");
    if (pogo_hs_put_response(&l->out, l->nonce_d, dg) != 0) return hs_fail(l, "out of memory");
    pogo_link_dirty(l);
    l->hs_step = 2;
    return 0;
  }
  if (pogo_hs_parse_ack(p, n, dg, &err) != 0) return hs_fail(l, err);
  if (digest(l, 'A', want) != 0) return hs_fail(l, "HMAC failed");
  if (!pogo_hs_digest_eq(dg, want)) return hs_fail(l, "the peer failed authentication (wrong cookie?)");
  int how = settle_duplicate(l);
  if (how < 0) return -1;
  go_up(l, d->N->L, how);
  return 0;
}

int pogo_mesh_on_frame(pogo_link *l, const char *p, uint32_t n) {
  pogo_dist *d = l->d;
  if (l->state == LS_HANDSHAKE) return on_handshake(l, p, n);
  if (l->state != LS_UP) return 0;
  pogo_wire_msg m;
  const char *err = NULL;
  if (pogo_wire_parse(p, n, &m, &err) == 0) {
    if (m.kind == POGO_W_TICK) return 0;
    if (m.kind == POGO_W_BYE) {
      lua_State *L = d->N->L;
      int top = lua_gettop(L);
      char reason[64] = "shutdown";
      char cerr[POGO_CODEC_ERRLEN];
      size_t used;
      if (pogo_codec_decode(L, m.tail, m.tail_len, &used, NULL, cerr) == 0 && lua_type(L, -1) == LUA_TSTRING)
        snprintf(reason, sizeof reason, "%s", lua_tostring(L, -1));
      lua_settop(L, top);
      pogo_peer *peer = d->peers[l->peer];
      if (strcmp(reason, "disconnect") == 0) peer->wanted = 0, peer->shunned = 1;
      pogo_mesh_link_lost(l, reason);
      return -1;
    }
    if (pogo_dist_on_data(d, l, &m, &err) == 0) return 0;
  }
  if (l->state != LS_UP || l->d != d) return -1;
  pogo_dist_logf(d, "closing link to %s: %s", l->peer_name, err ? err : "protocol error");
  pogo_mesh_link_lost(l, "protocol_error");
  return -1;
}

/* ---- listener and timers ---- */

static void on_connection(uv_stream_t *srv, int status) {
  pogo_dist_uv *u = srv->data;
  pogo_dist *d = u->d;
  if (!d || status < 0) return;
  int incoming = 0;
  for (pogo_link *o = d->links; o; o = o->next)
    if (!o->outgoing && o->state == LS_HANDSHAKE) incoming++;
  pogo_link *l = pogo_link_new(d, 0);
  if (!l) return;
  if (uv_accept(srv, (uv_stream_t *)&l->tcp) != 0 || d->stopping || incoming >= MAX_INCOMING_HANDSHAKES) {
    pogo_link_close(l);
    return;
  }
  struct sockaddr_storage ss;
  int len = sizeof ss;
  char ip[64] = "?";
  int port = 0;
  if (uv_tcp_getpeername(&l->tcp, (struct sockaddr *)&ss, &len) == 0) {
    if (ss.ss_family == AF_INET6) {
      uv_ip6_name((struct sockaddr_in6 *)&ss, ip, sizeof ip);
      port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    } else {
      uv_ip4_name((struct sockaddr_in *)&ss, ip, sizeof ip);
      port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    }
  }
  format_addr(l->addr, sizeof l->addr, ip, port);
  if (pogo_link_read_start(l) != 0) pogo_link_close(l);
}

static void tick_cb(uv_timer_t *h) {
  pogo_dist_uv *u = h->data;
  pogo_dist *d = u->d;
  if (!d) return;
  uint64_t now = now_ms(d);
  for (pogo_link *l = d->links, *next; l; l = next) {
    next = l->next;
    switch (l->state) {
    case LS_CONNECTING:
    case LS_HANDSHAKE:
      if (now - l->t_state > d->timeout_ms) {
        if (l->outgoing) dial_failed(l, d->N->L, "handshake timeout");
        else pogo_mesh_link_lost(l, "handshake timeout");
      }
      break;
    case LS_UP:
      if (now - l->last_recv > d->timeout_ms) {
        pogo_dist_logf(d, "%s did not answer for %u ms", l->peer_name, d->timeout_ms);
        pogo_mesh_link_lost(l, "timeout");
      } else {
        if (!l->sent) {
          size_t s = pogo_link_begin(l, POGO_W_TICK, 0);
          if (s != (size_t)-1) pogo_link_end(l, s);
        }
        l->sent = 0;
      }
      break;
    case LS_CLOSING:
      if (now - l->t_state > CLOSE_WAIT_MS) pogo_link_close(l);
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
}

static void uv_block_close_cb(uv_handle_t *h) {
  pogo_dist_uv *u = h->data;
  if (--u->open == 0) free(u);
}

static void close_handle(uv_handle_t *h) {
  if (!uv_is_closing(h)) uv_close(h, uv_block_close_cb);
}

/* Close the node's own handles (listener, timers, prepare). */
static void close_uv(pogo_dist *d) {
  pogo_dist_uv *u = d->uv;
  if (!u) return;
  d->uv = NULL;
  u->d = NULL;
  close_handle((uv_handle_t *)&u->listener);
  close_handle((uv_handle_t *)&u->tick);
  close_handle((uv_handle_t *)&u->dialt);
  close_handle((uv_handle_t *)&u->prep);
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
  u->listener.data = u->tick.data = u->dialt.data = u->prep.data = u;
  u->open = 4;
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
  if (strchr(addr, '@')) return pogo_name_valid(addr, len, host, port);
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
  schedule(d);
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
    idx = pogo_node_index(d->N, L, addr, strlen(addr));
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
    if (p->up) {
      lua_pushstring(L, addr);
      return 1;
    }
  } else {
    for (uint32_t i = 1; i < d->npeers; i++) {
      pogo_peer *p = d->peers[i];
      if (!p || !p->up) continue;
      char h2[POGO_HOST_MAX];
      int p2;
      const char *name = node_name(d, i);
      if (pogo_name_valid(name, strlen(name), h2, &p2) && p2 == port && strcmp(h2, host) == 0) {
        lua_pushstring(L, name);
        return 1;
      }
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
  pogo_push_ref(L, t->waiters);
  lua_Integer n = (lua_Integer)lua_rawlen(L, -1);
  lua_pushvalue(L, pid_idx);
  lua_rawseti(L, -2, n + 1);
  lua_pushvalue(L, ref_idx);
  lua_rawseti(L, -2, n + 2);
  lua_pop(L, 1);
  if (!t->dial) t->next_at = now_ms(d);
  schedule(d);
  return 0;
}

/* Close node idx's links and pending dials; BYE with `reason` on the up link. */
static int drop_node(pogo_dist *d, lua_State *L, uint32_t idx, const char *reason) {
  pogo_peer *p = pogo_mesh_peer(d, idx, 0);
  if (!p) return 0;
  char host[POGO_HOST_MAX];
  int port = 0;
  const char *name = node_name(d, idx);
  pogo_name_valid(name, strlen(name), host, &port);
  for (pogo_link *l = d->links, *next; l; l = next) {
    next = l->next;
    if (l != p->up && is_pending(l) && link_is_for(d, l, idx, host, port)) {
      if (l->outgoing) dial_abandon(l);
      else pogo_link_close(l);
    }
  }
  pogo_link *u = p->up;
  if (!u) return 0;
  p->up = NULL;
  p->down_since = now_ms(d);
  size_t s = pogo_link_begin(u, POGO_W_BYE, 32);
  if (s != (size_t)-1) {
    char err[POGO_CODEC_ERRLEN];
    lua_pushstring(L, reason);
    if (pogo_codec_encode(L, -1, &u->pk, NULL, "reason", err) != 0) pogo_link_cancel(u, s);
    else pogo_link_end(u, s);
    lua_pop(L, 1);
  }
  pogo_link_close_graceful(u);
  pogo_dist_nodedown(d, L, idx, reason);
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
  schedule(d);
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
    p->wanted = 1;
    p->backoff = d->backoff_min;
    p->next_at = now_ms(d);
    p->down_since = now_ms(d);
    schedule(d);
  }
}

void pogo_mesh_stop(pogo_dist *d, lua_State *L, const char *reason) {
  if (d->stopping) return;
  d->stopping = 1;
  if (d->uv) {
    pogo_dist_uv *u = d->uv;
    close_handle((uv_handle_t *)&u->listener);
    uv_timer_stop(&u->dialt);
    /* check closing links often so the stop does not wait a whole beat */
    uv_timer_start(&u->tick, tick_cb, 50, 50);
  }
  for (uint32_t i = 1; i < d->npeers; i++)
    if (d->peers[i] && d->peers[i]->up) drop_node(d, L, i, reason);
  for (pogo_link *l = d->links, *next; l; l = next) {
    next = l->next;
    if (is_pending(l)) {
      if (l->outgoing) dial_abandon(l);
      else pogo_link_close(l);
    }
  }
  while (d->targets) {
    pogo_target *t = d->targets;
    notify_waiters(d, L, t, 0, "shutdown");
    target_remove(d, L, t);
  }
}

/* Free everything the mesh owns, closing links without notice (node gc). */
void pogo_mesh_free(pogo_dist *d) {
  while (d->links) pogo_link_close(d->links);
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

/* Close the handles once a stopped node has no links left; 1 when done. */
int pogo_mesh_finish_stop(pogo_dist *d) {
  if (!d->stopping || d->links) return 0;
  close_uv(d);
  return 1;
}
