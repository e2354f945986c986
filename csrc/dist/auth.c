/*
 * auth.c: the handshake state machine: how a new connection proves the
 * cookie and becomes the one connection to a node (messages and proofs in
 * handshake.h).
 *
 * Contract
 * - Dialer D, acceptor A: D sends HELLO as soon as TCP connects
 *   (pogo_auth_hello); A answers CHALLENGE (its nonce), D proves the cookie
 *   in RESPONSE, A checks that proof first and answers ACK with its own; D
 *   checks it. Either side may REFUSE with a reason at any step. Until the
 *   end, frames are limited to POGO_HS_MAX_FRAME, and the mesh's heartbeat
 *   gives the whole exchange timeout_ms.
 * - A refuses: another protocol version, its own name, a HELLO addressed to
 *   another node ("wrong node"), a node that is stopping, a blocked node, a
 *   wrong cookie ("authentication failed (wrong cookie?)"). Both sides log
 *   why; no process ever sees a peer that did not prove the cookie.
 * - One connection per pair of nodes. Simultaneous dials: the dial started
 *   by the node with the smaller name wins (the loser is refused with
 *   "simultaneous", or abandoned quietly). A reads a HELLO while dialing that
 *   node: if its own dial wins, it refuses the HELLO's connection at once; if
 *   the HELLO's wins, A abandons its dial only once that dialer has proved
 *   the cookie (settle_dials), and only then drops incoming handshakes in
 *   the same name from another incarnation: a HELLO proves nothing, and one
 *   sent in a node's name by someone without the cookie must not drop that
 *   node's connections. A second connection that still authenticates (e.g. a
 *   seed spelled as a host name, or a gossip dial and a pogo.connect at once)
 *   is settled the same way then (settle_duplicate: the acceptor refuses it
 *   with "duplicate", and its dialer drops it quietly, as the link is up or
 *   about to be); a new incarnation of a node (other creation) replaces the
 *   old connection.
 * - A dial that reaches this node itself (an address of its own that it did
 *   not know as such: a loopback alias, a port mapping, a proxy in front of
 *   it) is found out by its nonce, never by a name alone: A, reading a HELLO
 *   in its own name and creation while one of its dials waits for a
 *   CHALLENGE, answers with a CHALLENGE (self_probe) instead of refusing;
 *   D, reading a CHALLENGE in its own name and creation whose nonce is that
 *   of one of its own self_probe handshakes, closes that one quietly and
 *   hands the dial to pogo_mesh_dial_self (one log line; a discovered
 *   address is never dialed again). A self_probe handshake that gets a
 *   RESPONSE was someone else in this node's name: refused ("node name
 *   already in use"), as a HELLO in its name and another creation is at
 *   once, and a CHALLENGE in its name without its nonce fails the dial
 *   ("another node answers in this node's name").
 * - An incoming handshake that ends without proving the cookie marks the node
 *   it named as unproven (pogo_auth_closing): its later HELLOs no longer hold
 *   back our dials to it (mesh.c, pogo_mesh_pending_for) until it comes up.
 * - A dialer's name is interned (node-name table, peer entry) only once it
 *   proved the cookie (set_peer): HELLOs in made-up names, however many,
 *   leave nothing behind.
 * - Outcomes go to the mesh: an authenticated connection is handed over with
 *   pogo_mesh_conn_up; a failed dial with pogo_mesh_dial_failed (it retries
 *   with backoff), a dropped one with pogo_mesh_dial_abandon.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dist/dist.h"

/* The fields of this node's hello and challenge that say who it is. */
static void hello_init(pogo_dist *d, pogo_hs_hello *h) {
  memset(h, 0, sizeof *h);
  h->version = POGO_PROTO_VERSION;
  h->creation = d->N->creation;
  h->max_frame = d->max_frame;
  h->name = d->name;
  h->name_len = d->name_len;
}

void pogo_auth_hello(pogo_conn *c) {
  pogo_dist *d = c->d;
  pogo_hs_hello h;
  hello_init(d, &h);
  if (c->dial_peer) {
    h.to = pogo_nodenames_get(d->N, d->N->L, c->dial_peer);
    h.to_len = strlen(h.to);
  } else if (c->target && c->target->name) {
    h.to = c->target->name;
    h.to_len = strlen(h.to);
  }
  if (pogo_hs_put_hello(&c->out, POGO_HS_HELLO, &h) != 0) {
    c->fail = "out of memory";
    pogo_conn_dirty(c);
    return;
  }
  c->hs_step = 1;
  pogo_conn_dirty(c);
}

static int refuse(pogo_conn *c, const char *reason) {
  pogo_dist *d = c->d;
  pogo_hs_put_refuse(&c->out, reason);
  pogo_conn_close_graceful(c);
  pogo_mesh_schedule(d);
  return -1;
}

/* Fail our handshake (either side): log and close. */
static int hs_fail(pogo_conn *c, const char *reason) {
  const char *who = c->peer_name ? c->peer_name : c->addr;
  if (c->outgoing) {
    pogo_mesh_dial_failed(c, c->d->N->L, reason);
  } else {
    pogo_dist *d = c->d;
    pogo_log_at(d, POGO_LOG_WARNING, who, "handshake with %s failed: %s", who, reason);
    pogo_conn_close(c);
    pogo_mesh_schedule(d);
  }
  return -1;
}

/* The peer of c says who it is. Its name gets an index and a peer entry
 * (intern) only once it is trusted: the node we dialed, or a dialer that
 * proved the cookie (settle_dials); until then c->peer is the name's index
 * if this node already knew it, else 0, so that names made up by someone
 * without the cookie never grow the node-name table. */
static int set_peer(pogo_conn *c, const pogo_hs_hello *h, int intern) {
  pogo_dist *d = c->d;
  free(c->peer_name);
  c->peer_name = malloc(h->name_len + 1);
  if (!c->peer_name) return -1;
  memcpy(c->peer_name, h->name, h->name_len);
  c->peer_name[h->name_len] = '\0';
  c->peer_name_len = h->name_len;
  c->peer_creation = h->creation;
  c->peer_max_frame = h->max_frame;
  if (!intern) {
    c->peer = pogo_nodenames_find(d->N, d->N->L, h->name, h->name_len);
    return 0;
  }
  c->peer = pogo_nodenames_index(d->N, d->N->L, h->name, h->name_len);
  return pogo_mesh_peer(d, c->peer, 1) ? 0 : -1;
}

static int digest(pogo_conn *c, char role, unsigned char out[POGO_HS_DIGEST]) {
  pogo_dist *d = c->d;
  int dialer = c->outgoing;
  return pogo_hs_digest(d->cookie, d->cookie_len, role, c->nonce_a, c->nonce_d,
                        dialer ? d->N->creation : c->peer_creation, dialer ? c->peer_creation : d->N->creation,
                        dialer ? d->name : c->peer_name, dialer ? d->name_len : c->peer_name_len,
                        dialer ? c->peer_name : d->name, dialer ? c->peer_name_len : d->name_len, out);
}

/* Both sides proved the cookie. If another connection to that node is up, keep one:
 * returns 0 to bring c up, 1 to bring it up in place of the other one without
 * telling anyone (same node, same incarnation), -1 if c was dropped. */
static int settle_duplicate(pogo_conn *c) {
  pogo_dist *d = c->d;
  pogo_peer *p = d->peers[c->peer];
  pogo_conn *u = p->up;
  if (!u) return 0;
  if (u->peer_creation != c->peer_creation) { /* a new incarnation */
    pogo_mesh_conn_lost(u, "connection_closed");
    return 0;
  }
  pogo_log_at(d, POGO_LOG_DEBUG, c->peer_name, "a second link to %s came up; keeping one", c->peer_name);
  if (!c->outgoing) return refuse(c, "duplicate");
  /* keep the connection dialed by the node with the smaller name */
  if (!u->outgoing && strcmp(d->name, c->peer_name) > 0) {
    pogo_mesh_dial_abandon(c);
    return -1;
  }
  p->up = NULL;
  pogo_conn_close(u);
  return 1;
}

/* Our pending dial to the node that c's HELLO names, if any. */
static pogo_conn *my_dial_to(pogo_conn *c) {
  char host[POGO_HOST_MAX];
  int port = 0;
  pogo_addr_of_node(c->peer_name, c->peer_name_len, host, &port);
  return pogo_mesh_pending_for(c->d, c->peer, host, port, c, 1);
}

/* The dialer of incoming c proved the cookie: now (not at its HELLO, which
 * anyone may send) its connection displaces the others about that node: our
 * pending dial (simultaneous dials: theirs wins unless ours was refused at
 * HELLO; ours may have started since, then the smaller name's still wins),
 * and incoming handshakes from another incarnation of it (stale: from before
 * it restarted). Returns -1 if c itself was refused. */
static int settle_dials(pogo_conn *c) {
  pogo_dist *d = c->d;
  c->peer = pogo_nodenames_index(d->N, d->N->L, c->peer_name, c->peer_name_len);
  if (!pogo_mesh_peer(d, c->peer, 1)) return hs_fail(c, "out of memory");
  pogo_conn *mine = my_dial_to(c);
  if (mine) {
    if (strcmp(d->name, c->peer_name) < 0) return refuse(c, "simultaneous");
    if (mine->target && !mine->target->name) mine->target->name = strdup(c->peer_name);
    pogo_mesh_dial_abandon(mine);
  }
  /* (the same incarnation's other dials are duplicates, settled when they end) */
  for (pogo_conn *o = d->conns, *next; o; o = next) {
    next = o->next;
    if (o != c && !o->outgoing && o->state == CS_HANDSHAKE && o->peer_name &&
        o->peer_creation != c->peer_creation && strcmp(o->peer_name, c->peer_name) == 0)
      pogo_conn_close(o);
  }
  return 0;
}

/* Incoming c is closing mid-handshake. If its dialer named a node (HELLO) and
 * never proved the cookie, that node's name no longer holds back our own
 * dials to it (pogo_mesh_pending_for): whoever sends HELLOs in a node's name
 * cannot keep us from dialing that node. Cleared when the node comes up. */
void pogo_auth_closing(pogo_conn *c) {
  if (c->outgoing || c->state != CS_HANDSHAKE || c->hs_step != 1 || !c->peer_name || !c->d) return;
  pogo_mesh_unproven(c);
}

/* Answer incoming c's HELLO with a CHALLENGE (a fresh nonce_a). self_probe:
 * the HELLO was in this node's own name and incarnation. */
static int challenge(pogo_conn *c, int self_probe) {
  pogo_hs_hello ch;
  hello_init(c->d, &ch);
  if (pogo_hs_random(c->nonce_a, POGO_HS_NONCE) != 0) return hs_fail(c, "no random bytes");
  memcpy(ch.nonce, c->nonce_a, POGO_HS_NONCE);
  if (pogo_hs_put_hello(&c->out, POGO_HS_CHALLENGE, &ch) != 0) return hs_fail(c, "out of memory");
  pogo_conn_dirty(c);
  c->self_probe = (uint8_t)self_probe;
  c->hs_step = 1;
  return 0;
}

/* Does a dial of ours wait for its CHALLENGE (HELLO sent)? */
static int own_dial_waits(pogo_dist *d) {
  for (pogo_conn *o = d->conns; o; o = o->next)
    if (o->outgoing && o->state == CS_HANDSHAKE && o->hs_step == 1) return 1;
  return 0;
}

/* Our incoming handshake that answered a HELLO in this node's own name with
 * this nonce (challenge, self_probe), if any: a dial that reads that
 * CHALLENGE reached this node itself. Nonces are 32 fresh random bytes, so
 * only this node's own CHALLENGE, carried back to it (directly, or through
 * a port mapping or a proxy), can match. */
static pogo_conn *self_probe_for(pogo_dist *d, const unsigned char nonce[POGO_HS_NONCE]) {
  for (pogo_conn *o = d->conns; o; o = o->next)
    if (!o->outgoing && o->self_probe && o->state == CS_HANDSHAKE && memcmp(o->nonce_a, nonce, POGO_HS_NONCE) == 0)
      return o;
  return NULL;
}

static int on_hello(pogo_conn *c, const char *p, uint32_t n) {
  pogo_dist *d = c->d;
  pogo_hs_hello h;
  const char *err;
  char reason[POGO_HS_REASON_MAX + 1];
  if ((unsigned char)p[0] != POGO_HS_HELLO) return hs_fail(c, "unexpected first message");
  if (pogo_hs_parse_hello(p, n, POGO_HS_HELLO, &h, &err) != 0) return hs_fail(c, err);
  if (h.version != POGO_PROTO_VERSION) {
    snprintf(reason, sizeof reason, "protocol version mismatch (this node speaks %d, the dialer %d)",
             POGO_PROTO_VERSION, h.version);
    pogo_log_at(d, POGO_LOG_WARNING, c->addr, "refused %s: %s", c->addr, reason);
    return refuse(c, reason);
  }
  if (h.name_len == d->name_len && memcmp(h.name, d->name, h.name_len) == 0) {
    /* this node's own name and incarnation while a dial of ours waits for
     * its CHALLENGE: maybe that dial reached this node. Answer, and our
     * dialer recognises the nonce (self_probe_for); anyone else who sent it
     * is refused at its RESPONSE. */
    if (h.creation == d->N->creation && own_dial_waits(d)) return challenge(c, 1);
    pogo_log_at(d, POGO_LOG_WARNING, c->addr, "refused %s: it uses this node's name", c->addr);
    return refuse(c, "node name already in use");
  }
  if (h.to_len && (h.to_len != d->name_len || memcmp(h.to, d->name, h.to_len) != 0)) {
    snprintf(reason, sizeof reason, "wrong node: this is %s", d->name);
    return refuse(c, reason);
  }
  if (d->stopping) return refuse(c, "shutting down");
  if (set_peer(c, &h, 0) != 0) return hs_fail(c, "out of memory");
  pogo_peer *peer = pogo_mesh_peer(d, c->peer, 0); /* (a blocked node's name is known) */
  if (peer && peer->blocked) {
    pogo_log_at(d, POGO_LOG_INFO, c->peer_name, "refused %s: blocked", c->peer_name);
    return refuse(c, "blocked");
  }
  /* simultaneous dials: the dial of the node with the smaller name wins. Ours
   * wins: refuse (only this connection, whoever sent it). Theirs wins: only
   * once they prove the cookie (settle_dials), so that a HELLO that merely
   * names a node drops nothing of ours. */
  if (my_dial_to(c) && strcmp(d->name, c->peer_name) < 0) return refuse(c, "simultaneous");
  return challenge(c, 0);
}

static int on_refuse(pogo_conn *c, const char *p, uint32_t n) {
  pogo_dist *d = c->d;
  char reason[POGO_HS_REASON_MAX + 1];
  const char *err;
  if (pogo_hs_parse_refuse(p, n, reason, &err) != 0) return hs_fail(c, err);
  if (!c->outgoing) {
    const char *who = c->peer_name ? c->peer_name : c->addr;
    pogo_log_at(d, POGO_LOG_WARNING, who, "handshake with %s failed: refused: %s", who, reason);
    pogo_conn_close(c);
    pogo_mesh_schedule(d);
    return -1;
  }
  if (strcmp(reason, "simultaneous") == 0 || strcmp(reason, "duplicate") == 0) {
    /* the peer's own dial brings the connection up, or another of ours did */
    pogo_mesh_dial_abandon(c);
    pogo_mesh_schedule(d);
    return -1;
  }
  if (strncmp(reason, "wrong node", 10) == 0 && c->target && c->target->name) {
    free(c->target->name); /* someone else lives at that address now */
    c->target->name = NULL;
  }
  char msg[POGO_HS_REASON_MAX + 32];
  snprintf(msg, sizeof msg, "refused by peer: %s", reason);
  return hs_fail(c, msg);
}

int pogo_auth_on_frame(pogo_conn *c, const char *p, uint32_t n) {
  pogo_dist *d = c->d;
  const char *err;
  unsigned char dg[POGO_HS_DIGEST], want[POGO_HS_DIGEST];
  if ((unsigned char)p[0] == POGO_HS_REFUSE && (c->outgoing || c->hs_step > 0)) return on_refuse(c, p, n);
  if (!c->outgoing) {
    if (c->hs_step == 0) return on_hello(c, p, n);
    if (c->self_probe) { /* not our own dial (that one stops at our CHALLENGE): someone in our name */
      pogo_log_at(d, POGO_LOG_WARNING, c->addr, "refused %s: it uses this node's name", c->addr);
      return refuse(c, "node name already in use");
    }
    if (pogo_hs_parse_response(p, n, c->nonce_d, dg, &err) != 0) return hs_fail(c, err);
    if (digest(c, 'D', want) != 0) return hs_fail(c, "HMAC failed");
    if (!pogo_hs_digest_eq(dg, want)) {
      pogo_log_at(d, POGO_LOG_WARNING, c->peer_name, "refused %s (%s): authentication failed (wrong cookie?)",
                  c->peer_name, c->addr);
      return refuse(c, "authentication failed (wrong cookie?)");
    }
    c->hs_step = 2; /* proved */
    if (settle_dials(c) < 0) return -1;
    int how = settle_duplicate(c);
    if (how < 0) return -1;
    if (digest(c, 'A', dg) != 0) return hs_fail(c, "HMAC failed");
    if (pogo_hs_put_ack(&c->out, dg) != 0) return hs_fail(c, "out of memory");
    pogo_conn_dirty(c);
    pogo_mesh_conn_up(c, d->N->L, how);
    return 0;
  }
  if (c->hs_step == 1) {
    pogo_hs_hello h;
    if (pogo_hs_parse_hello(p, n, POGO_HS_CHALLENGE, &h, &err) != 0) return hs_fail(c, err);
    if (h.version != POGO_PROTO_VERSION) return hs_fail(c, "protocol version mismatch");
    if (h.name_len == d->name_len && memcmp(h.name, d->name, h.name_len) == 0) {
      pogo_conn *in = h.creation == d->N->creation ? self_probe_for(d, h.nonce) : NULL;
      if (!in) return hs_fail(c, "another node answers in this node's name");
      pogo_conn_close(in); /* our own end of it, quietly: the dial's side says it */
      pogo_mesh_dial_self(c, d->N->L);
      return -1;
    }
    if (set_peer(c, &h, 1) != 0) return hs_fail(c, "out of memory");
    if (c->dial_peer && c->dial_peer != c->peer) return hs_fail(c, "another node answers at that address");
    if (d->peers[c->peer]->blocked) return hs_fail(c, "blocked");
    if (c->target && !c->target->name) c->target->name = strdup(c->peer_name);
    memcpy(c->nonce_a, h.nonce, POGO_HS_NONCE);
    if (pogo_hs_random(c->nonce_d, POGO_HS_NONCE) != 0) return hs_fail(c, "no random bytes");
    if (digest(c, 'D', dg) != 0) return hs_fail(c, "HMAC failed");
    if (pogo_hs_put_response(&c->out, c->nonce_d, dg) != 0) return hs_fail(c, "out of memory");
    pogo_conn_dirty(c);
    c->hs_step = 2;
    return 0;
  }
  if (pogo_hs_parse_ack(p, n, dg, &err) != 0) return hs_fail(c, err);
  if (digest(c, 'A', want) != 0) return hs_fail(c, "HMAC failed");
  if (!pogo_hs_digest_eq(dg, want)) return hs_fail(c, "the peer failed authentication (wrong cookie?)");
  int how = settle_duplicate(c);
  if (how < 0) return -1;
  pogo_mesh_conn_up(c, d->N->L, how);
  return 0;
}
