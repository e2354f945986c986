/*
 * fuzz_handshake.c: libFuzzer target for the handshake state machine
 * (csrc/dist/auth.c) and the admission of unauthenticated connections
 * (csrc/dist/admit.c), driven through fake connections.
 *
 * The harness links auth.c, admit.c and the pure formats with stubs for what
 * they call in the rest of the transport (conn.c, mesh.c, log.c) and the
 * runtime (nodenames.c): a connection is a pogo_conn whose frames go to its
 * `out` buffer, which the harness reads back. This node is "a@127.0.0.1:4000"
 * with the cookie "cookie". The input is a list of steps; each picks one of
 * a few connections (made on demand, incoming or outgoing, from one of a few
 * peer addresses) and feeds it a frame: raw bytes from the input, or a
 * message the harness makes as an honest peer would, from the frames in the
 * connection's `out` (the nonce of our CHALLENGE, our HELLO) with the right
 * cookie or a wrong one, under one of a few peer names.
 *
 * Checked after every step:
 * - a connection is brought up (pogo_mesh_conn_up) only after the peer sent
 *   a proof made with the right cookie for this very exchange;
 * - a dial is taken for one that reached this node itself
 *   (pogo_mesh_dial_self) only when the CHALLENGE it read carried the nonce
 *   of one of this node's own CHALLENGEs (the harness plays that loop with
 *   our own name and creation);
 * - no callback reaches a connection after it was closed;
 * - every frame the state machine writes parses as a handshake message;
 * - at most POGO_ADMIT_PER_ADDR pending incoming handshakes from one address
 *   and POGO_ADMIT_MAX in all;
 * - nothing leaks (LeakSanitizer), nothing reads out of bounds (ASan).
 *
 * Build and run: bash csrc/fuzz/run.sh [seconds]
 */
// fuzz-sources: dist/auth.c dist/admit.c dist/handshake.c dist/frame.c dist/addr.c
// fuzz-libs: -lcrypto -luv
// fuzz-cflags: -D_GNU_SOURCE
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dist/dist.h"

#define MAX_CONNS 200
#define NAMES 4

static const char *const COOKIE = "cookie";
static const char *const SELF = "a@127.0.0.1:4000";
static const char *const PEER_NAMES[NAMES] = {"b@127.0.0.1:4001", "c@127.0.0.1:4002", "b@127.0.0.1:4001",
                                              "a@127.0.0.1:4000"}; /* the last one: our own name */

static void die(const char *what) {
  fprintf(stderr, "fuzz_handshake: %s\n", what);
  abort();
}

/* ---- the world the state machine sees ---- */

static uv_loop_t loop;
static pogo_node node;
static pogo_dist dist;
static char *names[64]; /* node-name table (index 0: this node) */
static uint32_t nnames;

typedef struct fake {
  pogo_conn *c;
  int closed;   /* pogo_conn_close was called */
  int up;       /* pogo_mesh_conn_up was called */
  int proved;   /* the peer sent a valid proof on it */
  int name;     /* the peer name the harness plays */
  size_t seen;  /* bytes of c->out the harness has read */
  unsigned char nonce_a[POGO_HS_NONCE]; /* from our CHALLENGE (we accept) */
  int have_nonce;
  int self_fed; /* (dialed) it was fed a CHALLENGE with the nonce of one of our own */
  uint32_t creation;
} fake;

static fake fakes[MAX_CONNS];
static int nfakes;

static fake *fake_of(pogo_conn *c) {
  for (int i = 0; i < nfakes; i++)
    if (fakes[i].c == c) return &fakes[i];
  return NULL;
}

/* The index of `name`, or nnames if it has none. */
static uint32_t name_slot(const char *name, size_t len) {
  uint32_t i = 0;
  while (i < nnames && !(strlen(names[i]) == len && memcmp(names[i], name, len) == 0)) i++;
  return i;
}

uint32_t pogo_nodenames_index(pogo_node *N, lua_State *L, const char *name, size_t len) {
  (void)N;
  (void)L;
  uint32_t i = name_slot(name, len);
  if (i < nnames) return i;
  if (nnames == sizeof names / sizeof names[0]) die("too many names");
  names[nnames] = strndup(name, len);
  return nnames++;
}

uint32_t pogo_nodenames_find(pogo_node *N, lua_State *L, const char *name, size_t len) {
  (void)N;
  (void)L;
  uint32_t i = name_slot(name, len);
  return i < nnames ? i : 0;
}

const char *pogo_nodenames_get(pogo_node *N, lua_State *L, uint32_t idx) {
  (void)N;
  (void)L;
  return idx < nnames ? names[idx] : "?";
}

void pogo_log_line(pogo_dist *d, const char *fmt, ...) {
  (void)d;
  (void)fmt;
}

int pogo_log_due(pogo_dist *d, pogo_log_tally *t) {
  (void)d;
  return t->n != 0;
}

void pogo_log_at(pogo_dist *d, int level, const char *peer, const char *fmt, ...) {
  (void)d;
  (void)level;
  (void)peer;
  (void)fmt;
}

pogo_peer *pogo_mesh_peer(pogo_dist *d, uint32_t idx, int create) {
  if (idx == 0) return NULL;
  if (idx >= d->npeers) {
    if (!create) return NULL;
    uint32_t n = 64;
    pogo_peer **np = calloc(n, sizeof *np);
    if (!np) return NULL;
    if (d->peers) memcpy(np, d->peers, d->npeers * sizeof *np);
    free(d->peers);
    d->peers = np;
    d->npeers = n;
  }
  if (!d->peers[idx] && create) d->peers[idx] = calloc(1, sizeof(pogo_peer));
  return d->peers[idx];
}

static void unlist(pogo_conn *c) {
  pogo_dist *d = &dist;
  if (c->prev) c->prev->next = c->next;
  else if (d->conns == c) d->conns = c->next;
  if (c->next) c->next->prev = c->prev;
  c->next = c->prev = NULL;
}

void pogo_conn_close(pogo_conn *c) {
  fake *f = fake_of(c);
  if (!f) die("close of an unknown connection");
  if (f->closed) return;
  f->closed = 1;
  pogo_auth_closing(c); /* as conn.c does */
  if (c->d) {
    for (uint32_t i = 1; i < dist.npeers; i++)
      if (dist.peers[i] && dist.peers[i]->up == c) dist.peers[i]->up = NULL;
    unlist(c);
  }
  c->state = CS_DEAD;
  c->d = NULL;
}

void pogo_conn_close_graceful(pogo_conn *c) {
  if (c->state == CS_DEAD || c->state == CS_CLOSING) return;
  pogo_auth_closing(c); /* as conn.c does */
  c->state = CS_CLOSING;
}

void pogo_conn_dirty(pogo_conn *c) {
  if (!c->d || c->state == CS_DEAD) die("a closed connection was written to");
}

void pogo_mesh_schedule(pogo_dist *d) { (void)d; }

void pogo_mesh_unproven(pogo_conn *c) {
  pogo_peer *p = pogo_mesh_peer(&dist, c->peer, 0);
  if (p) p->unproven = 1;
}

void pogo_mesh_dial_failed(pogo_conn *c, lua_State *L, const char *reason) {
  (void)L;
  (void)reason;
  pogo_conn_close(c);
}

void pogo_mesh_dial_abandon(pogo_conn *c) { pogo_conn_close(c); }

void pogo_mesh_dial_self(pogo_conn *c, lua_State *L) {
  (void)L;
  fake *f = fake_of(c);
  if (!f || f->closed || !c->outgoing) die("dial_self on a closed or incoming connection");
  if (!f->self_fed) die("a dial was taken for this node itself without this node's nonce");
  if (getenv("FUZZ_HS_TRACE")) fprintf(stderr, "self: dialed %s\n", c->addr);
  pogo_conn_close(c);
}

void pogo_mesh_conn_lost(pogo_conn *c, const char *reason) {
  (void)reason;
  pogo_conn_close(c);
}

void pogo_mesh_conn_up(pogo_conn *c, lua_State *L, int quiet) {
  (void)L;
  (void)quiet;
  fake *f = fake_of(c);
  if (!f || f->closed) die("a closed connection came up");
  if (!f->proved) die("a connection came up without a proof of the cookie");
  if (!c->peer || c->peer >= dist.npeers || !dist.peers[c->peer]) die("up without a peer");
  f->up = 1;
  if (getenv("FUZZ_HS_TRACE")) fprintf(stderr, "up: %s %s\n", c->outgoing ? "dialed" : "accepted", c->peer_name);
  c->state = CS_UP;
  dist.peers[c->peer]->up = c;
}

pogo_conn *pogo_mesh_pending_for(pogo_dist *d, uint32_t idx, const char *host, int port, const pogo_conn *except,
                                 int outgoing_only) {
  (void)host;
  (void)port;
  for (pogo_conn *o = d->conns; o; o = o->next)
    if (o != except && (o->state == CS_CONNECTING || o->state == CS_HANDSHAKE) &&
        (!outgoing_only || o->outgoing) && idx && (o->peer == idx || o->dial_peer == idx))
      return o;
  return NULL;
}

/* ---- connections ---- */

static fake *new_conn(int outgoing, int addr, int name) {
  if (nfakes == MAX_CONNS) return NULL;
  pogo_conn *c = calloc(1, sizeof *c);
  if (!c) die("out of memory");
  c->d = &dist;
  c->outgoing = (uint8_t)outgoing;
  c->state = CS_HANDSHAKE;
  c->peer_max_frame = POGO_HS_MAX_FRAME;
  if (addr % 16 == 15) snprintf(c->addr, sizeof c->addr, "[::1]:%d", 7000 + nfakes);
  else snprintf(c->addr, sizeof c->addr, "127.0.%d.%d:%d", addr / 16, addr % 16, 5000 + nfakes);
  c->next = dist.conns;
  if (dist.conns) dist.conns->prev = c;
  dist.conns = c;
  fake *f = &fakes[nfakes++];
  memset(f, 0, sizeof *f);
  f->c = c;
  f->name = name % NAMES;
  f->creation = 7u + (uint32_t)name;
  if (f->name == 3 && (name & 8)) f->creation = node.creation; /* this node itself, as a loop would show it */
  if (outgoing) {
    if (name & 4) c->dial_peer = pogo_nodenames_index(&node, NULL, PEER_NAMES[f->name], strlen(PEER_NAMES[f->name]));
    pogo_auth_hello(c);
  } else {
    pogo_admit(&dist, c);
  }
  return f;
}

/* Read the frames c wrote since last time; they must be handshake messages.
 * Keeps the nonce of a CHALLENGE. */
static void read_out(fake *f) {
  pogo_conn *c = f->c;
  pogo_frame_reader r;
  pogo_frame_reader_init(&r, POGO_HS_MAX_FRAME);
  size_t left = c->out.len - f->seen;
  while (left) {
    size_t avail;
    char *room = pogo_frame_reader_space(&r, &avail);
    if (!room) die("out of memory");
    size_t n = left < avail ? left : avail;
    memcpy(room, c->out.data + c->out.len - left, n);
    pogo_frame_reader_commit(&r, n);
    left -= n;
  }
  f->seen = c->out.len;
  const char *p;
  uint32_t n;
  int rc;
  while ((rc = pogo_frame_next(&r, &p, &n)) == 1) {
    const char *err;
    pogo_hs_hello h;
    unsigned char nonce[POGO_HS_NONCE], dg[POGO_HS_DIGEST];
    char reason[POGO_HS_REASON_MAX + 1];
    switch ((unsigned char)p[0]) {
    case POGO_HS_HELLO:
      if (pogo_hs_parse_hello(p, n, POGO_HS_HELLO, &h, &err)) die("we wrote a bad HELLO");
      break;
    case POGO_HS_CHALLENGE:
      if (pogo_hs_parse_hello(p, n, POGO_HS_CHALLENGE, &h, &err)) die("we wrote a bad CHALLENGE");
      memcpy(f->nonce_a, h.nonce, POGO_HS_NONCE);
      f->have_nonce = 1;
      break;
    case POGO_HS_RESPONSE:
      if (pogo_hs_parse_response(p, n, nonce, dg, &err)) die("we wrote a bad RESPONSE");
      break;
    case POGO_HS_ACK:
      if (pogo_hs_parse_ack(p, n, dg, &err)) die("we wrote a bad ACK");
      break;
    case POGO_HS_REFUSE:
      if (pogo_hs_parse_refuse(p, n, reason, &err)) die("we wrote a bad REFUSE");
      break;
    default:
      die("we wrote something that is not a handshake message");
    }
  }
  if (rc < 0) die("we wrote a bad frame");
  pogo_frame_reader_free(&r);
}

/* Feed payload p[0..n) to f's connection. */
static void feed(fake *f, const char *p, uint32_t n) {
  pogo_conn *c = f->c;
  if (f->closed || c->state != CS_HANDSHAKE || n == 0) return;
  pogo_auth_on_frame(c, p, n);
  if (!f->closed) read_out(f);
}

/* Feed a whole frame from a pogo_buf the harness built. */
static void feed_buf(fake *f, pogo_buf *b) {
  if (b->len > POGO_FRAME_HDR) feed(f, b->data + POGO_FRAME_HDR, (uint32_t)(b->len - POGO_FRAME_HDR));
  b->len = 0;
}

/* The honest peer's next message on f (with the right cookie, or not). */
static void play(fake *f, int right_cookie, const uint8_t *extra, size_t extra_len) {
  pogo_conn *c = f->c;
  pogo_buf b = {0};
  const char *peer = PEER_NAMES[f->name];
  const char *cookie = right_cookie ? COOKIE : "wrong";
  unsigned char nonce[POGO_HS_NONCE], dg[POGO_HS_DIGEST];
  memset(nonce, extra_len ? extra[0] : 0x5a, sizeof nonce);
  pogo_hs_hello h;
  memset(&h, 0, sizeof h);
  h.version = POGO_PROTO_VERSION;
  h.creation = f->creation;
  h.max_frame = 1u << 20;
  h.name = peer;
  h.name_len = strlen(peer);
  if (!c->outgoing) {
    if (c->hs_step == 0) { /* HELLO to us */
      if (extra_len > 1 && (extra[1] & 1)) {
        h.to = SELF;
        h.to_len = strlen(SELF);
      }
      if (pogo_hs_put_hello(&b, POGO_HS_HELLO, &h)) die("put hello");
    } else if (f->have_nonce) { /* RESPONSE: the dialer's proof */
      if (pogo_hs_digest(cookie, strlen(cookie), 'D', f->nonce_a, nonce, f->creation, node.creation, peer,
                         strlen(peer), SELF, strlen(SELF), dg))
        die("hmac");
      if (pogo_hs_put_response(&b, nonce, dg)) die("put response");
      if (right_cookie) f->proved = 1;
    }
  } else {
    if (c->hs_step == 1) { /* CHALLENGE to our HELLO */
      fake *own = NULL; /* a dial that loops back: the CHALLENGE one of our accepted connections wrote */
      if (f->name == 3 && extra_len > 1 && (extra[1] & 2))
        for (int i = nfakes - 1; i >= 0 && !own; i--)
          if (!fakes[i].c->outgoing && fakes[i].have_nonce) own = &fakes[i];
      if (own) {
        memcpy(nonce, own->nonce_a, sizeof nonce);
        f->self_fed = 1;
      }
      memcpy(h.nonce, nonce, sizeof nonce);
      memcpy(f->nonce_a, nonce, sizeof nonce);
      if (pogo_hs_put_hello(&b, POGO_HS_CHALLENGE, &h)) die("put challenge");
    } else if (c->hs_step == 2) { /* ACK: the acceptor's proof */
      if (pogo_hs_digest(cookie, strlen(cookie), 'A', f->nonce_a, c->nonce_d, node.creation, f->creation, SELF,
                         strlen(SELF), peer, strlen(peer), dg))
        die("hmac");
      if (pogo_hs_put_ack(&b, dg)) die("put ack");
      if (right_cookie) f->proved = 1;
    }
  }
  feed_buf(f, &b);
  pogo_buf_free(&b);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void check_admission(void) {
  static char hosts[MAX_CONNS][POGO_HOST_MAX + 8];
  static char *sorted[MAX_CONNS];
  uint32_t total = 0;
  for (pogo_conn *o = dist.conns; o; o = o->next) {
    if (o->outgoing || o->state != CS_HANDSHAKE) continue;
    const char *colon = strrchr(o->addr, ':');
    size_t hl = colon ? (size_t)(colon - o->addr) : strlen(o->addr);
    memcpy(hosts[total], o->addr, hl);
    hosts[total][hl] = '\0';
    sorted[total] = hosts[total];
    total++;
  }
  if (total > POGO_ADMIT_MAX) die("too many pending handshakes");
  qsort(sorted, total, sizeof sorted[0], cmp_str);
  for (uint32_t i = 0, run = 0; i < total; i++) {
    run = i > 0 && strcmp(sorted[i], sorted[i - 1]) == 0 ? run + 1 : 1;
    if (run > POGO_ADMIT_PER_ADDR) die("too many pending handshakes from one address");
  }
}

static void reset(void) {
  for (int i = 0; i < nfakes; i++) {
    pogo_conn *c = fakes[i].c;
    pogo_buf_free(&c->out);
    pogo_buf_free(&c->wbuf);
    pogo_frame_reader_free(&c->in);
    free(c->peer_name);
    free(c->busy);
    free(c);
  }
  nfakes = 0;
  for (uint32_t i = 0; i < dist.npeers; i++) {
    if (!dist.peers[i]) continue;
    free(dist.peers[i]->dialer);
    free(dist.peers[i]);
  }
  free(dist.peers);
  dist.peers = NULL;
  dist.npeers = 0;
  dist.conns = NULL;
  for (uint32_t i = 1; i < nnames; i++) free(names[i]);
  nnames = 1;
}

static void setup(void) {
  static int done;
  if (done) return;
  done = 1;
  if (uv_loop_init(&loop) != 0) die("uv_loop_init");
  node.loop = &loop;
  node.creation = 3;
  dist.N = &node;
  dist.name = (char *)SELF;
  dist.name_len = strlen(SELF);
  dist.cookie = (char *)COOKIE;
  dist.cookie_len = strlen(COOKIE);
  dist.max_frame = 1u << 20;
  dist.log = 0;
  names[0] = (char *)SELF;
  nnames = 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  setup();
  if (size < 1) return 0;
  dist.stopping = data[0] & 1;
  size_t i = 1;
  while (i + 2 <= size) {
    uint8_t op = data[i], arg = data[i + 1];
    i += 2;
    fake *f = nfakes ? &fakes[arg % nfakes] : NULL;
    switch (op % 8) {
    case 0: /* accept a connection from one of the addresses */
      new_conn(0, arg & 7, arg >> 3);
      break;
    case 1: /* dial out (by name when arg & 4) */
      new_conn(1, 0, arg);
      break;
    case 2:
    case 3: { /* raw bytes: a length byte, then that many bytes */
      if (!f || i >= size) break;
      size_t n = data[i++];
      if (n > size - i) n = size - i;
      feed(f, (const char *)data + i, (uint32_t)n);
      i += n;
      break;
    }
    case 4: /* the honest peer, right cookie */
    case 5:
      if (f) play(f, 1, data + i, size - i);
      break;
    case 6: /* the honest peer, wrong cookie */
      if (f) play(f, 0, data + i, size - i);
      break;
    case 7: /* a flood of accepts: from one address (arg & 0x80) or from many */
      for (int k = 0; k < 4 * (arg & 15) && nfakes < MAX_CONNS; k++) new_conn(0, arg & 0x80 ? arg >> 4 : k, 1);
      break;
    }
    check_admission();
  }
  reset();
  return 0;
}
