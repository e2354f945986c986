/*
 * acceptor.c: a listener accepts at most POGO_ACCEPT_BATCH connections in
 * one turn of the loop.
 *
 * libuv's listener callback accepts for as long as connections wait in the
 * kernel's backlog. A client that opens connections as fast as the node
 * closes them (a flood that reconnects at once, each accept costing a TLS
 * session or an eviction) keeps that backlog full, and the loop never leaves
 * the accepting: no heartbeat is sent or read, and the node's peers declare
 * it down. With a batch per turn, the node's reads, writes and timers run
 * between two batches, whatever arrives.
 *
 * Contract
 * - The owner's connection callback (cb) asks pogo_acceptor_take(a) first: 1
 *   accept now (uv_accept); 0 leave it: libuv stops watching the listener
 *   until the connection is accepted, and the check phase at the end of this
 *   turn calls cb(listener, 0) again, which accepts it as the next batch's
 *   first (and re-arms the listener).
 * - A connection the owner cannot take now (no memory for its record) is
 *   left the same way with pogo_acceptor_later(a): tried again after the
 *   turn, so a moment without memory does not leave the listener stopped
 *   for good (libuv watches it again only once a connection is accepted).
 * - The check handle is active only in a turn that accepted; it does not
 *   keep the loop alive on its own (the listener does). Its data pointer is
 *   the owner's, for the owner's close callback: the owner closes
 *   &a->check with its other handles. A connection left waiting when the
 *   listener closes is closed by libuv with it.
 */
#include <stddef.h>

#include "acceptor.h"

static void check_cb(uv_check_t *h) {
  pogo_acceptor *a = (pogo_acceptor *)(void *)((char *)h - offsetof(pogo_acceptor, check));
  uv_check_stop(h);
  a->accepted = 0;
  if (!a->deferred || uv_is_closing((uv_handle_t *)a->listener)) return;
  a->deferred = 0;
  a->cb(a->listener, 0);
}

void pogo_acceptor_init(pogo_acceptor *a, uv_loop_t *loop, uv_stream_t *listener, uv_connection_cb cb, void *data) {
  uv_check_init(loop, &a->check);
  uv_unref((uv_handle_t *)&a->check);
  a->check.data = data;
  a->listener = listener;
  a->cb = cb;
  a->accepted = 0;
  a->deferred = 0;
}

void pogo_acceptor_later(pogo_acceptor *a) {
  a->deferred = 1;
  uv_check_start(&a->check, check_cb);
}

int pogo_acceptor_take(pogo_acceptor *a) {
  if (a->accepted >= POGO_ACCEPT_BATCH) {
    a->deferred = 1;
    return 0;
  }
  if (a->accepted++ == 0) uv_check_start(&a->check, check_cb);
  return 1;
}
