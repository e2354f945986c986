/*
 * log.c: the transport's log lines (connections made, lost and refused),
 * through pogo.log.
 *
 * Contract
 * - pogo_log_at(d, level, peer, fmt, ...) records one event: its level
 *   (POGO_LOG_DEBUG .. POGO_LOG_ERROR), its message and the peer it is about
 *   (a node name or an address; NULL: none). pogo_log_line(d, fmt, ...) is the
 *   same at level info without a peer. Nothing is recorded when the node was
 *   started with log = false (bin/pogo --quiet).
 * - The lines go to Lua's pogo.log.emit(level, msg, {module = "pogo.dist",
 *   peer = peer}), so pogo.log's level and handler apply to them as to every
 *   line of the node. They are handed over from an idle callback of their
 *   own, in order, in the loop iteration that logged them, never from inside
 *   the transport's work: the transport logs while it changes its state (a
 *   connection going, a loop over the peers), and a handler is user code that
 *   may call anything, the transport included.
 * - Never raises, and a line is never lost silently: it goes to stderr, in
 *   pogo.log's default one-line format, when it cannot be queued (no memory;
 *   beyond QUEUE_MAX waiting lines the others are counted and the count is
 *   logged), when pogo.log is not loaded or its emit fails (the node's Lua
 *   state is closing, say), and when the transport closes with lines queued
 *   (no Lua call then: that may be the Lua state's own end).
 * - The queue (pogo_log_q) is its own allocation: its idle handle frees it
 *   in its close callback, so a callback never reaches freed state.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dist/dist.h"

#define QUEUE_MAX 1000 /* lines waiting for the idle callback; more are counted */

typedef struct log_entry {
  struct log_entry *next;
  int level;
  char *peer; /* NULL: none */
  char msg[];
} log_entry;

struct pogo_log_q {
  uv_idle_t idle;
  pogo_dist *d; /* NULL once the transport is gone */
  log_entry *head, *tail;
  unsigned n, dropped;
};

static const char *const LEVELS[] = {"?", "debug", "info", "notice", "warning", "error"};

static const char *level_name(int level) {
  return level >= POGO_LOG_DEBUG && level <= POGO_LOG_ERROR ? LEVELS[level] : LEVELS[POGO_LOG_ERROR];
}

/* The stderr fallback, in pogo.log's format (logline.c). */
static void to_stderr(const char *node, int level, const char *peer, const char *msg) {
  pogo_logline_stderr(node, level_name(level), "pogo.dist", msg, "peer", peer);
}

/* 1 when pogo.log took the line (logline.c). */
static int to_lua(pogo_dist *d, const log_entry *e) {
  return pogo_logline_emit(d->N, level_name(e->level), "pogo.dist", e->msg, "peer", e->peer);
}

static log_entry *entry_new(int level, const char *peer, const char *msg) {
  size_t n = strlen(msg);
  log_entry *e = malloc(sizeof *e + n + 1);
  if (!e) return NULL;
  memcpy(e->msg, msg, n + 1);
  e->next = NULL;
  e->level = level;
  e->peer = NULL;
  if (peer && !(e->peer = strdup(peer))) {
    free(e);
    return NULL;
  }
  return e;
}

static void entry_free(log_entry *e) {
  free(e->peer);
  free(e);
}

/* The lines queued when the callback starts (lines logged meanwhile wait for
 * the next round). A handler may stop the transport, or start a new one: the
 * queue outlives that (q->d is then NULL). */
static void idle_cb(uv_idle_t *h) {
  pogo_log_q *q = h->data;
  uv_idle_stop(h);
  log_entry *e = q->head;
  unsigned dropped = q->dropped;
  q->head = q->tail = NULL;
  q->n = q->dropped = 0;
  while (e) {
    log_entry *next = e->next;
    pogo_dist *d = q->d;
    if (!d || !to_lua(d, e)) to_stderr(d ? d->name : NULL, e->level, e->peer, e->msg);
    entry_free(e);
    e = next;
  }
  if (dropped && q->d) {
    char msg[96];
    snprintf(msg, sizeof msg, "%u transport log lines dropped (more than %d at once)", dropped, QUEUE_MAX);
    log_entry *x = entry_new(POGO_LOG_WARNING, NULL, msg);
    if (!x || !to_lua(q->d, x)) to_stderr(q->d->name, POGO_LOG_WARNING, NULL, msg);
    if (x) entry_free(x);
  }
}

static void q_close_cb(uv_handle_t *h) { free(h->data); }

void pogo_log_open(pogo_dist *d) {
  pogo_log_q *q = calloc(1, sizeof *q);
  if (!q) return; /* its lines go to stderr */
  if (uv_idle_init(d->N->loop, &q->idle) != 0) {
    free(q);
    return;
  }
  q->idle.data = q;
  q->d = d;
  d->logq = q;
}

void pogo_log_close(pogo_dist *d) {
  pogo_log_q *q = d->logq;
  if (!q) return;
  d->logq = NULL;
  q->d = NULL;
  for (log_entry *e = q->head, *next; e; e = next) {
    next = e->next;
    to_stderr(d->name, e->level, e->peer, e->msg);
    entry_free(e);
  }
  q->head = q->tail = NULL;
  uv_close((uv_handle_t *)&q->idle, q_close_cb);
}

static void vlog(pogo_dist *d, int level, const char *peer, const char *fmt, va_list ap) {
  if (!d->log) return;
  char buf[1024];
  vsnprintf(buf, sizeof buf, fmt, ap);
  pogo_log_q *q = d->logq;
  if (q && q->n >= QUEUE_MAX) {
    q->dropped++;
    return;
  }
  log_entry *e = q ? entry_new(level, peer, buf) : NULL;
  if (!e) {
    to_stderr(d->name, level, peer, buf);
    return;
  }
  if (q->tail) q->tail->next = e;
  else q->head = e;
  q->tail = e;
  q->n++;
  if (!uv_is_active((uv_handle_t *)&q->idle)) uv_idle_start(&q->idle, idle_cb);
}

void pogo_log_at(pogo_dist *d, int level, const char *peer, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vlog(d, level, peer, fmt, ap);
  va_end(ap);
}

void pogo_log_line(pogo_dist *d, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vlog(d, POGO_LOG_INFO, NULL, fmt, ap);
  va_end(ap);
}

#define TALLY_EVERY_MS 1000

int pogo_log_due(pogo_dist *d, pogo_log_tally *t) {
  uint64_t now = uv_now(d->N->loop);
  if (!t->n || now - t->at < TALLY_EVERY_MS) return 0;
  t->at = now;
  return 1;
}
