/*
 * conn.c: one TCP connection between two nodes (a "link" between nodes in
 * Erlang's words; not to be confused with links between processes, links.c).
 *
 * Contract
 * - Reading: bytes go into a frame reader (frame.h); every complete frame of
 *   a read is handed on in order: to the handshake (auth.c) until the
 *   connection is authenticated, then to the frame dispatch (inbound.c). A
 *   malformed or oversize frame, a read error or EOF ends this connection
 *   only (the mesh is told: pogo_mesh_conn_lost). The nodedown reason of a
 *   peer that closed the connection or died (EOF, or a reset: a process
 *   killed with bytes unread resets it) is "connection_closed", as
 *   Erlang's; other read errors give "connection_error", write errors
 *   "write error".
 * - The frames of a read are handled under pogo_guard (lua_pcall): when one
 *   fails (out of memory while decoding or delivering it), a message (SEND,
 *   SEND_NAMED) is dropped and the next frames go on; any other frame, or a
 *   handshake frame, closes the connection ("out of memory"), since what it
 *   would have changed (a link, a monitor, the handshake) is now unknown.
 * - Writing is batched: frames are appended to `out` and written together
 *   just before the loop next polls (uv_prepare), so a burst of messages costs
 *   one write and a lone message adds no latency. A batch above
 *   POGO_FLUSH_AT is written at once. A write first goes straight to the
 *   socket (uv_try_write); only what the kernel does not take waits in `wbuf`
 *   for a uv_write, while new frames fill `out`.
 * - Backpressure: above POGO_BUSY_HIGH bytes not yet written, senders that
 *   are processes are suspended (pogo_conn_add_busy) and resumed below
 *   POGO_BUSY_LOW or when the connection goes away (pogo_sched_suspend and
 *   pogo_sched_resume: the scheduler owns the processes' states).
 * - Write errors found while a process is sending are deferred to the prepare
 *   callback, so a sender never runs the nodedown fan-out itself.
 * - TCP_NODELAY on every connection.
 * - With TLS (c->tls, tls.c) the bytes read are ciphertext that tls.c
 *   decrypts into the same frame reader, and a batch is encrypted whole
 *   before it is written the same way; a plain connection pays one test.
 */
#include <stdlib.h>
#include <string.h>

#include "dist/dist.h"

static void close_cb(uv_handle_t *h) {
  pogo_conn *c = h->data;
  pogo_tls_free(c);
  pogo_frame_reader_free(&c->in);
  pogo_buf_free(&c->out);
  pogo_buf_free(&c->wbuf);
  free(c->peer_name);
  free(c->busy);
  free(c);
}

pogo_conn *pogo_conn_new(pogo_dist *d, int outgoing) {
  pogo_conn *c = calloc(1, sizeof *c);
  if (!c) return NULL;
  if (uv_tcp_init(d->N->loop, &c->tcp) != 0) {
    free(c);
    return NULL;
  }
  c->tcp.data = c;
  c->d = d;
  c->outgoing = (uint8_t)outgoing;
  c->state = outgoing ? CS_CONNECTING : CS_HANDSHAKE;
  c->t_state = c->last_recv = uv_now(d->N->loop);
  pogo_frame_reader_init(&c->in, POGO_HS_MAX_FRAME);
  msgpack_packer_init(&c->pk, &c->out, pogo_buf_write_cb);
  c->peer_max_frame = POGO_HS_MAX_FRAME;
  c->next = d->conns;
  if (d->conns) d->conns->prev = c;
  d->conns = c;
  return c;
}

static void unlist(pogo_conn *c) {
  pogo_dist *d = c->d;
  if (c->prev) c->prev->next = c->next;
  else d->conns = c->next;
  if (c->next) c->next->prev = c->prev;
  c->next = c->prev = NULL;
  if (c->dirty) {
    for (pogo_conn **pp = &d->dirty; *pp; pp = &(*pp)->dnext) {
      if (*pp == c) {
        *pp = c->dnext;
        break;
      }
    }
    c->dirty = 0;
  }
}

void pogo_conn_close(pogo_conn *c) {
  if (c->state == CS_DEAD) return;
  pogo_auth_closing(c);
  pogo_conn_wake_busy(c);
  unlist(c);
  if (c->gai) c->gai->c = NULL;
  c->gai = NULL;
  c->state = CS_DEAD;
  c->d = NULL;
  uv_close((uv_handle_t *)&c->tcp, close_cb);
}

/* ---- reading ---- */

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  (void)suggested;
  pogo_conn *c = h->data;
  if (c->tls) {
    pogo_tls_alloc(c, buf);
    return;
  }
  size_t avail = 0;
  char *p = pogo_frame_reader_space(&c->in, &avail);
  if (avail > 0x7fffffff) avail = 0x7fffffff;
  *buf = uv_buf_init(p, p ? (unsigned int)avail : 0);
}

typedef struct frames_run {
  pogo_conn *c;
  int rc; /* 0: every frame handled; -1: the connection stopped (closed, closing) */
} frames_run;

/* Hand out the complete frames of c's reader (under pogo_guard). */
static int frames_fn(lua_State *L, void *arg) {
  (void)L;
  frames_run *f = arg;
  pogo_conn *c = f->c;
  f->rc = -1;
  for (;;) {
    const char *p;
    uint32_t n;
    int r = pogo_frame_next(&c->in, &p, &n);
    if (r == 0) {
      f->rc = 0;
      return 0;
    }
    if (r < 0) {
      if (!c->outgoing && c->state == CS_HANDSHAKE && c->hs_step == 0 && pogo_tls_refuse_tls(c)) return 0;
      const char *who = c->peer_name ? c->peer_name : c->addr;
      pogo_log_at(c->d, POGO_LOG_WARNING, who, "closing link to %s: %s", who, c->in.error);
      pogo_mesh_conn_lost(c, "protocol_error");
      return 0;
    }
    if (c->state == CS_UP) pogo_stats_in(c, (size_t)n + POGO_FRAME_HDR);
    c->cur_kind = c->state == CS_UP ? (uint8_t)p[0] : 0;
    r = c->state == CS_HANDSHAKE ? pogo_auth_on_frame(c, p, n) : c->state == CS_UP ? pogo_inbound_frame(c, p, n) : 0;
    if (r != 0) return 0;
    if (!c->d || c->state == CS_DEAD || c->state == CS_CLOSING) return 0;
  }
}

typedef struct lost {
  pogo_conn *c;
  const char *reason;
} lost;

static int lost_fn(lua_State *L, void *arg) {
  (void)L;
  lost *l = arg;
  pogo_mesh_conn_lost(l->c, l->reason);
  return 0;
}

/* pogo_mesh_conn_lost under pogo_guard (nodedown delivers messages). */
static void conn_lost(pogo_conn *c, const char *reason) {
  lost l = {c, reason};
  pogo_guard(c->d->N, lost_fn, &l, "closing a connection", NULL, 0);
}

int pogo_conn_frames(pogo_conn *c) {
  pogo_node *N = c->d->N;
  for (;;) {
    char why[POGO_CODEC_ERRLEN];
    frames_run f = {c, -1};
    int st = pogo_guard(N, frames_fn, &f, NULL, why, sizeof why);
    pogo_mem_strict(N, 0); /* (a decode that failed did not put it back) */
    if (st == LUA_OK) return f.rc;
    if (!c->d || c->state == CS_DEAD || c->state == CS_CLOSING) return -1;
    const char *who = c->peer_name ? c->peer_name : c->addr;
    if (c->state == CS_UP && (c->cur_kind == POGO_W_SEND || c->cur_kind == POGO_W_SEND_NAMED)) {
      pogo_log_at(c->d, POGO_LOG_WARNING, who, "dropped a message from %s: %s", who, why);
      continue; /* the frame is consumed: on with the next ones */
    }
    pogo_log_at(c->d, POGO_LOG_WARNING, who, "closing link to %s: %s", who, why);
    conn_lost(c, "out of memory");
    return -1;
  }
}

typedef struct tls_in {
  pogo_conn *c;
  const char *p;
  size_t n;
} tls_in;

/* TLS bytes read (tls.c decrypts them and hands the frames to
 * pogo_conn_frames; its failures close the connection: under pogo_guard) */
static int tls_read_fn(lua_State *L, void *arg) {
  (void)L;
  tls_in *in = arg;
  pogo_tls_read(in->c, in->p, in->n);
  return 0;
}

/* The reason a connection is lost on libuv error err: the peer closed it
 * (an orderly close, or a reset: a peer that died with bytes unread, a
 * SIGKILL, resets the connection instead of closing it) or `other`. */
static const char *lost_reason(ssize_t err, const char *other) {
  return err == UV_EOF || err == UV_ECONNRESET || err == UV_EPIPE ? "connection_closed" : other;
}

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  pogo_conn *c = s->data;
  if (!c->d || c->state == CS_DEAD) return;
  if (nread == 0) return;
  if (nread < 0) {
    if (nread == UV_ENOBUFS) conn_lost(c, "out of memory");
    else if (c->state == CS_CLOSING) pogo_conn_close(c);
    else conn_lost(c, lost_reason(nread, "connection_error"));
    return;
  }
  c->last_recv = uv_now(c->d->N->loop);
  if (c->tls) {
    tls_in in = {c, buf->base, (size_t)nread};
    if (c->state != CS_CLOSING) pogo_guard(c->d->N, tls_read_fn, &in, "reading a TLS connection", NULL, 0);
    return;
  }
  pogo_frame_reader_commit(&c->in, (size_t)nread);
  if (c->state == CS_CLOSING) { /* only waiting for EOF */
    c->in.start = c->in.end = 0;
    return;
  }
  pogo_conn_frames(c);
}

int pogo_conn_read_start(pogo_conn *c) {
  uv_tcp_nodelay(&c->tcp, 1);
  if (c->d->tls && pogo_tls_attach(c) != 0) return -1;
  return uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb);
}

/* ---- writing ---- */

size_t pogo_conn_begin(pogo_conn *c, uint8_t kind, size_t hint) {
  size_t start = pogo_frame_begin(&c->out, hint + 1);
  if (start == (size_t)-1) return start;
  c->out.data[c->out.len++] = (char)kind;
  return start;
}

void pogo_conn_cancel(pogo_conn *c, size_t start) { c->out.len = start; }

int pogo_conn_end(pogo_conn *c, size_t start) {
  long n = pogo_frame_end(&c->out, start, c->peer_max_frame);
  if (n < 0) return -1;
  pogo_stats_out(c, (size_t)n + POGO_FRAME_HDR);
  c->sent = 1;
  if (c->out.len >= POGO_FLUSH_AT && !c->writing) pogo_conn_flush(c);
  else pogo_conn_dirty(c);
  return 0;
}

void pogo_conn_dirty(pogo_conn *c) {
  pogo_dist *d = c->d;
  if (!d || c->dirty) return;
  c->dirty = 1;
  c->dnext = d->dirty;
  d->dirty = c;
  if (d->uv && !uv_is_active((uv_handle_t *)&d->uv->prep)) uv_prepare_start(&d->uv->prep, pogo_conn_prepare_cb);
  pogo_host_io_queued(d->N); /* a host that owns the loop steps again (host.c) */
}

size_t pogo_conn_backlog(const pogo_conn *c) {
  return c->out.len + (c->writing ? c->wbuf.len - c->woff : 0);
}

static void shutdown_cb(uv_shutdown_t *req, int status) {
  (void)req;
  (void)status; /* the connection ends on EOF or at its closing deadline */
}

/* After a graceful close: shut the write side once everything is written. */
static void maybe_shutdown(pogo_conn *c) {
  if (c->state != CS_CLOSING || c->shut || c->writing || c->out.len) return;
  c->shut = 1;
  if (uv_shutdown(&c->sreq, (uv_stream_t *)&c->tcp, shutdown_cb) != 0) pogo_conn_close(c);
}

static void write_cb(uv_write_t *req, int status) {
  pogo_conn *c = req->data;
  c->writing = 0;
  c->wbuf.len = 0;
  c->woff = 0;
  if (!c->d || c->state == CS_DEAD) return;
  if (status < 0) {
    c->fail = lost_reason(status, "write error");
    pogo_conn_dirty(c);
    return;
  }
  pogo_buf_trim(&c->wbuf, 4 * POGO_FLUSH_AT);
  if (c->out.len || c->tls) pogo_conn_flush(c);
  else maybe_shutdown(c);
  if (c->nbusy && pogo_conn_backlog(c) < POGO_BUSY_LOW) pogo_conn_wake_busy(c);
}

void pogo_conn_written(pogo_conn *c) {
  maybe_shutdown(c);
  if (c->nbusy) pogo_conn_wake_busy(c);
}

void pogo_conn_flush(pogo_conn *c) {
  if (c->writing || c->state == CS_DEAD || c->state == CS_CONNECTING || c->fail) return;
  if (c->tls) {
    pogo_tls_flush(c);
    return;
  }
  if (c->out.len == 0) {
    maybe_shutdown(c);
    return;
  }
  pogo_conn_write(c, &c->out);
}

void pogo_conn_write(pogo_conn *c, pogo_buf *src) {
  uv_buf_t b = uv_buf_init(src->data, (unsigned int)src->len);
  int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
  if (n == UV_EAGAIN || n == UV_ENOSYS) n = 0;
  if (n < 0) {
    c->fail = lost_reason(n, "write error");
    pogo_conn_dirty(c);
    return;
  }
  if ((size_t)n == src->len) {
    src->len = 0;
    pogo_buf_trim(src, 4 * POGO_FLUSH_AT);
    pogo_conn_written(c);
    return;
  }
  /* the rest waits in wbuf; new bytes go to the (empty) other buffer */
  pogo_buf t = c->wbuf;
  c->wbuf = *src;
  *src = t;
  src->len = 0;
  c->woff = (size_t)n;
  b = uv_buf_init(c->wbuf.data + n, (unsigned int)(c->wbuf.len - (size_t)n));
  c->wreq.data = c;
  int w = uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, write_cb);
  if (w != 0) {
    c->wbuf.len = 0;
    c->fail = lost_reason(w, "write error");
    pogo_conn_dirty(c);
    return;
  }
  c->writing = 1;
}

void pogo_conn_close_graceful(pogo_conn *c) {
  if (c->state == CS_DEAD || c->state == CS_CLOSING) return;
  if (c->state == CS_CONNECTING) {
    pogo_conn_close(c);
    return;
  }
  pogo_auth_closing(c);
  pogo_conn_wake_busy(c);
  c->state = CS_CLOSING;
  c->t_state = uv_now(c->d->N->loop);
  pogo_conn_flush(c);
}

void pogo_conn_prepare_cb(uv_prepare_t *h) {
  pogo_dist_uv *u = h->data;
  pogo_dist *d = u->d;
  if (!d) {
    uv_prepare_stop(h);
    return;
  }
  while (d->dirty) {
    pogo_conn *c = d->dirty;
    d->dirty = c->dnext;
    c->dirty = 0;
    if (!c->fail) pogo_conn_flush(c);
    if (c->fail && c->state != CS_DEAD) {
      if (c->state == CS_CLOSING) pogo_conn_close(c);
      else conn_lost(c, c->fail); /* nodedown: under pogo_guard */
    }
    if (!u->d) return; /* (the transport closed meanwhile) */
  }
  uv_prepare_stop(h);
}

/* ---- backpressure ---- */

int pogo_conn_add_busy(pogo_conn *c, const pogo_rq_entry *e) {
  if (c->nbusy == c->busy_cap) {
    uint32_t ncap = c->busy_cap ? c->busy_cap * 2 : 4;
    pogo_rq_entry *nb = realloc(c->busy, ncap * sizeof *nb);
    if (!nb) return -1;
    c->busy = nb;
    c->busy_cap = ncap;
  }
  c->busy[c->nbusy++] = *e;
  return 0;
}

void pogo_conn_wake_busy(pogo_conn *c) {
  if (!c->nbusy || !c->d) return;
  for (uint32_t i = 0; i < c->nbusy; i++) pogo_sched_resume(c->d->N, &c->busy[i]);
  c->nbusy = 0;
}
