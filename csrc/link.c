/*
 * link.c: one TCP connection between two nodes.
 *
 * Contract
 * - Reading: bytes go into a frame reader (frame.h); every complete frame of
 *   a read is handed to the mesh in order. A malformed or oversize frame, a
 *   read error or EOF ends this link only.
 * - Writing is batched: frames are appended to `out` and written together
 *   just before the loop next polls (uv_prepare), so a burst of messages costs
 *   one write and a lone message adds no latency. A batch above
 *   POGO_FLUSH_AT is written at once. A write first goes straight to the
 *   socket (uv_try_write); only what the kernel does not take waits in `wbuf`
 *   for a uv_write, while new frames fill `out`.
 * - Backpressure: above POGO_BUSY_HIGH bytes not yet written, senders that
 *   are processes are suspended (pogo_link_add_busy) and resumed below
 *   POGO_BUSY_LOW or when the link goes away.
 * - Write errors found while a process is sending are deferred to the prepare
 *   callback, so a sender never runs the nodedown fan-out itself.
 * - TCP_NODELAY on every link.
 */
#include <stdlib.h>
#include <string.h>

#include "dist_int.h"

static void close_cb(uv_handle_t *h) {
  pogo_link *l = h->data;
  pogo_frame_reader_free(&l->in);
  pogo_buf_free(&l->out);
  pogo_buf_free(&l->wbuf);
  free(l->peer_name);
  free(l->busy);
  free(l);
}

pogo_link *pogo_link_new(pogo_dist *d, int outgoing) {
  pogo_link *l = calloc(1, sizeof *l);
  if (!l) return NULL;
  if (uv_tcp_init(d->N->loop, &l->tcp) != 0) {
    free(l);
    return NULL;
  }
  l->tcp.data = l;
  l->d = d;
  l->outgoing = (uint8_t)outgoing;
  l->state = outgoing ? LS_CONNECTING : LS_HANDSHAKE;
  l->t_state = l->last_recv = uv_now(d->N->loop);
  pogo_frame_reader_init(&l->in, POGO_HS_MAX_FRAME);
  msgpack_packer_init(&l->pk, &l->out, pogo_buf_write_cb);
  l->peer_max_frame = POGO_HS_MAX_FRAME;
  l->next = d->links;
  if (d->links) d->links->prev = l;
  d->links = l;
  return l;
}

static void unlist(pogo_link *l) {
  pogo_dist *d = l->d;
  if (l->prev) l->prev->next = l->next;
  else d->links = l->next;
  if (l->next) l->next->prev = l->prev;
  l->next = l->prev = NULL;
  if (l->dirty) {
    for (pogo_link **pp = &d->dirty; *pp; pp = &(*pp)->dnext) {
      if (*pp == l) {
        *pp = l->dnext;
        break;
      }
    }
    l->dirty = 0;
  }
}

void pogo_link_close(pogo_link *l) {
  if (l->state == LS_DEAD) return;
  pogo_link_wake_busy(l);
  unlist(l);
  if (l->gai) l->gai->l = NULL;
  l->gai = NULL;
  l->state = LS_DEAD;
  l->d = NULL;
  uv_close((uv_handle_t *)&l->tcp, close_cb);
}

/* ---- reading ---- */

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  (void)suggested;
  pogo_link *l = h->data;
  size_t avail = 0;
  char *p = pogo_frame_reader_space(&l->in, &avail);
  if (avail > 0x7fffffff) avail = 0x7fffffff;
  *buf = uv_buf_init(p, p ? (unsigned int)avail : 0);
}

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  (void)buf;
  pogo_link *l = s->data;
  if (!l->d || l->state == LS_DEAD) return;
  if (nread == 0) return;
  if (nread < 0) {
    if (nread == UV_ENOBUFS) pogo_mesh_link_lost(l, "out of memory");
    else if (l->state == LS_CLOSING) pogo_link_close(l);
    else pogo_mesh_link_lost(l, nread == UV_EOF ? "connection_closed" : "connection_error");
    return;
  }
  pogo_frame_reader_commit(&l->in, (size_t)nread);
  l->last_recv = uv_now(l->d->N->loop);
  if (l->state == LS_CLOSING) { /* only waiting for EOF */
    l->in.start = l->in.end = 0;
    return;
  }
  for (;;) {
    const char *p;
    uint32_t n;
    int r = pogo_frame_next(&l->in, &p, &n);
    if (r == 0) break;
    if (r < 0) {
      pogo_dist_logf(l->d, "closing link to %s: %s", l->peer_name ? l->peer_name : l->addr, l->in.error);
      pogo_mesh_link_lost(l, "protocol_error");
      return;
    }
    if (pogo_mesh_on_frame(l, p, n) != 0) return;
    if (!l->d || l->state == LS_DEAD || l->state == LS_CLOSING) return;
  }
}

int pogo_link_read_start(pogo_link *l) {
  uv_tcp_nodelay(&l->tcp, 1);
  return uv_read_start((uv_stream_t *)&l->tcp, alloc_cb, read_cb);
}

/* ---- writing ---- */

size_t pogo_link_begin(pogo_link *l, uint8_t kind, size_t hint) {
  size_t start = pogo_frame_begin(&l->out, hint + 1);
  if (start == (size_t)-1) return start;
  l->out.data[l->out.len++] = (char)kind;
  return start;
}

void pogo_link_cancel(pogo_link *l, size_t start) { l->out.len = start; }

int pogo_link_end(pogo_link *l, size_t start) {
  if (pogo_frame_end(&l->out, start, l->peer_max_frame) < 0) return -1;
  l->sent = 1;
  if (l->out.len >= POGO_FLUSH_AT && !l->writing) pogo_link_flush(l);
  else pogo_link_dirty(l);
  return 0;
}

void pogo_link_dirty(pogo_link *l) {
  pogo_dist *d = l->d;
  if (!d || l->dirty) return;
  l->dirty = 1;
  l->dnext = d->dirty;
  d->dirty = l;
  if (d->uv && !uv_is_active((uv_handle_t *)&d->uv->prep)) uv_prepare_start(&d->uv->prep, pogo_link_prepare_cb);
}

size_t pogo_link_backlog(const pogo_link *l) {
  return l->out.len + (l->writing ? l->wbuf.len - l->woff : 0);
}

static void shutdown_cb(uv_shutdown_t *req, int status) {
  (void)req;
  (void)status; /* the link ends on EOF or at its closing deadline */
}

/* After a graceful close: shut the write side once everything is written. */
static void maybe_shutdown(pogo_link *l) {
  if (l->state != LS_CLOSING || l->shut || l->writing || l->out.len) return;
  l->shut = 1;
  if (uv_shutdown(&l->sreq, (uv_stream_t *)&l->tcp, shutdown_cb) != 0) pogo_link_close(l);
}

static void write_cb(uv_write_t *req, int status) {
  pogo_link *l = req->data;
  l->writing = 0;
  l->wbuf.len = 0;
  l->woff = 0;
  if (!l->d || l->state == LS_DEAD) return;
  if (status < 0) {
    l->fail = "write error";
    pogo_link_dirty(l);
    return;
  }
  pogo_buf_trim(&l->wbuf, 4 * POGO_FLUSH_AT);
  if (l->out.len) pogo_link_flush(l);
  else maybe_shutdown(l);
  if (l->nbusy && pogo_link_backlog(l) < POGO_BUSY_LOW) pogo_link_wake_busy(l);
}

void pogo_link_flush(pogo_link *l) {
  if (l->writing || l->state == LS_DEAD || l->state == LS_CONNECTING || l->fail) return;
  if (l->out.len == 0) {
    maybe_shutdown(l);
    return;
  }
  uv_buf_t b = uv_buf_init(l->out.data, (unsigned int)l->out.len);
  int n = uv_try_write((uv_stream_t *)&l->tcp, &b, 1);
  if (n == UV_EAGAIN || n == UV_ENOSYS) n = 0;
  if (n < 0) {
    l->fail = "write error";
    pogo_link_dirty(l);
    return;
  }
  if ((size_t)n == l->out.len) {
    l->out.len = 0;
    pogo_buf_trim(&l->out, 4 * POGO_FLUSH_AT);
    maybe_shutdown(l);
    if (l->nbusy) pogo_link_wake_busy(l);
    return;
  }
  /* the rest waits in wbuf; new frames go to the (empty) other buffer */
  pogo_buf t = l->wbuf;
  l->wbuf = l->out;
  l->out = t;
  l->out.len = 0;
  l->woff = (size_t)n;
  b = uv_buf_init(l->wbuf.data + n, (unsigned int)(l->wbuf.len - (size_t)n));
  l->wreq.data = l;
  if (uv_write(&l->wreq, (uv_stream_t *)&l->tcp, &b, 1, write_cb) != 0) {
    l->wbuf.len = 0;
    l->fail = "write error";
    pogo_link_dirty(l);
    return;
  }
  l->writing = 1;
}

void pogo_link_close_graceful(pogo_link *l) {
  if (l->state == LS_DEAD || l->state == LS_CLOSING) return;
  if (l->state == LS_CONNECTING) {
    pogo_link_close(l);
    return;
  }
  pogo_link_wake_busy(l);
  l->state = LS_CLOSING;
  l->t_state = uv_now(l->d->N->loop);
  pogo_link_flush(l);
}

void pogo_link_prepare_cb(uv_prepare_t *h) {
  pogo_dist_uv *u = h->data;
  pogo_dist *d = u->d;
  if (!d) {
    uv_prepare_stop(h);
    return;
  }
  while (d->dirty) {
    pogo_link *l = d->dirty;
    d->dirty = l->dnext;
    l->dirty = 0;
    if (l->fail) {
      if (l->state == LS_CLOSING) pogo_link_close(l);
      else pogo_mesh_link_lost(l, l->fail);
      continue;
    }
    pogo_link_flush(l);
    if (l->fail && l->state != LS_DEAD) {
      if (l->state == LS_CLOSING) pogo_link_close(l);
      else pogo_mesh_link_lost(l, l->fail);
    }
  }
  uv_prepare_stop(h);
}

/* ---- backpressure ---- */

int pogo_link_add_busy(pogo_link *l, pogo_proc *p) {
  if (l->nbusy == l->busy_cap) {
    uint32_t ncap = l->busy_cap ? l->busy_cap * 2 : 4;
    pogo_rq_entry *nb = realloc(l->busy, ncap * sizeof *nb);
    if (!nb) return -1;
    l->busy = nb;
    l->busy_cap = ncap;
  }
  l->busy[l->nbusy].serial = p->serial;
  l->busy[l->nbusy].slot = p->slot;
  l->nbusy++;
  return 0;
}

void pogo_link_wake_busy(pogo_link *l) {
  if (!l->nbusy || !l->d) return;
  pogo_node *N = l->d->N;
  for (uint32_t i = 0; i < l->nbusy; i++) {
    pogo_rq_entry e = l->busy[i];
    pogo_proc *p = e.slot <= N->nslots ? N->procs[e.slot] : NULL;
    if (p && p->serial == e.serial && p->state == PS_SLEEPING && p->heap_pos < 0) pogo_sched_enqueue(N, p);
  }
  l->nbusy = 0;
}
