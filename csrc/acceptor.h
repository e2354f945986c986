/* acceptor.h: at most a batch of accepts per turn of the loop (acceptor.c). */
#ifndef POGO_ACCEPTOR_H
#define POGO_ACCEPTOR_H

#include <stdint.h>
#include <uv.h>

#define POGO_ACCEPT_BATCH 32 /* connections accepted in one turn of the loop */

typedef struct pogo_acceptor {
  uv_check_t check;       /* runs after a poll that accepted; check.data: the owner's */
  uv_stream_t *listener;
  uv_connection_cb cb;    /* the listener's connection callback */
  uint32_t accepted;      /* in this turn of the loop */
  uint8_t deferred;       /* a connection waits in the listener, not accepted */
} pogo_acceptor;

/* Before uv_listen(listener, ..., cb): the check handle gets `data` (closed by the owner with its handles). */
void pogo_acceptor_init(pogo_acceptor *a, uv_loop_t *loop, uv_stream_t *listener, uv_connection_cb cb, void *data);
/* First thing in cb: 1 accept now; 0 return without accepting (cb runs again after this turn). */
int pogo_acceptor_take(pogo_acceptor *a);
/* cb took the connection but cannot accept it now (no memory): cb runs again after this turn. */
void pogo_acceptor_later(pogo_acceptor *a);

#endif
