/*
 * acceptor_batch.c: a listener behind pogo_acceptor (acceptor.c) takes at
 * most POGO_ACCEPT_BATCH connections per turn of the loop, and every
 * connection is accepted in the end: the ones left waiting at the end of a
 * turn, and one the owner could not take at first (pogo_acceptor_later).
 *
 * On one libuv loop, a listener on 127.0.0.1 (port 0) and CLIENTS client
 * connections opened in one turn, so that the kernel's backlog holds all of
 * them when the loop next polls. A prepare handle counts the turns; the
 * listener's callback counts accepts per turn, refuses the very first
 * connection once (as when a record cannot be allocated), and accepts the
 * rest. Checks: all CLIENTS accepted before a 5 s timer, no turn took more
 * than the batch, some turn took a whole batch (the deferral was exercised),
 * and the refused one was taken later. Every handle is closed and the loop
 * runs to its end. Exit status 0 on success.
 *
 * Run by spec/support/run_tests.sh (from $BUILD/ctest).
 */
#include <stdio.h>
#include <stdlib.h>

#include "acceptor.h"

#define CLIENTS 100

typedef struct test {
  uv_loop_t loop;
  uv_tcp_t listener;
  pogo_acceptor acceptor;
  uv_prepare_t turns;
  uv_timer_t deadline;
  uv_tcp_t clients[CLIENTS];
  uv_connect_t connects[CLIENTS];
  uv_tcp_t accepted[CLIENTS];
  int naccepted, this_turn, max_turn, refused, timed_out, connected;
} test;

static void on_close(uv_handle_t *h) { (void)h; }

static void close_all(test *t) {
  uv_close((uv_handle_t *)&t->listener, on_close);
  uv_close((uv_handle_t *)&t->acceptor.check, on_close);
  uv_close((uv_handle_t *)&t->turns, on_close);
  uv_close((uv_handle_t *)&t->deadline, on_close);
  for (int i = 0; i < CLIENTS; i++) uv_close((uv_handle_t *)&t->clients[i], on_close);
  for (int i = 0; i < t->naccepted; i++) uv_close((uv_handle_t *)&t->accepted[i], on_close);
}

static void turn_cb(uv_prepare_t *h) {
  test *t = h->data;
  t->this_turn = 0;
}

static void on_connection(uv_stream_t *srv, int status) {
  test *t = srv->data;
  if (status < 0 || !pogo_acceptor_take(&t->acceptor)) return;
  if (!t->refused) { /* as if the record could not be allocated */
    t->refused = 1;
    pogo_acceptor_later(&t->acceptor);
    return;
  }
  uv_tcp_t *c = &t->accepted[t->naccepted];
  uv_tcp_init(&t->loop, c);
  if (uv_accept(srv, (uv_stream_t *)c) != 0) {
    fprintf(stderr, "acceptor_batch: uv_accept failed\n");
    exit(1);
  }
  t->naccepted++;
  if (++t->this_turn > t->max_turn) t->max_turn = t->this_turn;
  if (t->naccepted == CLIENTS) close_all(t);
}

static void on_connect(uv_connect_t *req, int status) {
  test *t = req->data;
  if (status == 0) t->connected++;
}

static void deadline_cb(uv_timer_t *h) {
  test *t = h->data;
  t->timed_out = 1;
  close_all(t);
}

int main(void) {
  test *t = calloc(1, sizeof *t);
  if (!t) return 1;
  uv_loop_init(&t->loop);
  uv_tcp_init(&t->loop, &t->listener);
  t->listener.data = t;
  pogo_acceptor_init(&t->acceptor, &t->loop, (uv_stream_t *)&t->listener, on_connection, t);
  uv_prepare_init(&t->loop, &t->turns);
  t->turns.data = t;
  uv_prepare_start(&t->turns, turn_cb);
  uv_timer_init(&t->loop, &t->deadline);
  t->deadline.data = t;
  uv_timer_start(&t->deadline, deadline_cb, 5000, 0);

  struct sockaddr_in addr;
  uv_ip4_addr("127.0.0.1", 0, &addr);
  int len = sizeof addr;
  if (uv_tcp_bind(&t->listener, (struct sockaddr *)&addr, 0) != 0 ||
      uv_listen((uv_stream_t *)&t->listener, 128, on_connection) != 0 ||
      uv_tcp_getsockname(&t->listener, (struct sockaddr *)&addr, &len) != 0) {
    fprintf(stderr, "acceptor_batch: cannot listen on 127.0.0.1\n");
    return 1;
  }
  for (int i = 0; i < CLIENTS; i++) {
    uv_tcp_init(&t->loop, &t->clients[i]);
    t->connects[i].data = t;
    uv_tcp_connect(&t->connects[i], &t->clients[i], (struct sockaddr *)&addr, on_connect);
  }
  uv_run(&t->loop, UV_RUN_DEFAULT);
  int rc = uv_loop_close(&t->loop);

  int ok = 1;
#define CHECK(cond, ...)                                                                                             \
  do {                                                                                                               \
    if (!(cond)) {                                                                                                   \
      fprintf(stderr, "acceptor_batch: " __VA_ARGS__);                                                               \
      ok = 0;                                                                                                        \
    }                                                                                                                \
  } while (0)
  CHECK(!t->timed_out, "timed out with %d of %d connections accepted\n", t->naccepted, CLIENTS);
  CHECK(t->naccepted == CLIENTS, "%d of %d connections accepted\n", t->naccepted, CLIENTS);
  CHECK(t->max_turn <= POGO_ACCEPT_BATCH, "%d accepted in one turn (batch %d)\n", t->max_turn, POGO_ACCEPT_BATCH);
  CHECK(t->max_turn == POGO_ACCEPT_BATCH, "no turn took a whole batch (at most %d): the deferral was not exercised\n",
        t->max_turn);
  CHECK(rc == 0, "the loop still had handles at its end\n");
  if (ok) printf("acceptor_batch: %d connections accepted, at most %d a turn\n", t->naccepted, t->max_turn);
  free(t);
  return ok ? 0 : 1;
}
