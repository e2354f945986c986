/*
 * admit.c: which unauthenticated connections a node keeps while they
 * handshake: a bound per peer address and in all, so that someone without
 * the cookie who keeps opening connections cannot lock other nodes out.
 *
 * Contract
 * - pogo_admit(d, c) is called for each accepted connection c (incoming, its
 *   peer's "ip:port" in c->addr) before it is read from. Pending incoming
 *   handshakes are counted per peer IP address (the port does not count): at
 *   most POGO_ADMIT_PER_ADDR from one address, POGO_ADMIT_MAX in all. When
 *   c would pass either bound, the oldest pending handshake from its own
 *   address is closed to make room; only an address with nothing else
 *   pending (a node dialing once) takes the oldest slot of all. So a flood,
 *   from one address or from many that each keep several connections open,
 *   only ever evicts its own connections, and a node dialing from an
 *   address of its own keeps its slot for as long as its handshake takes
 *   (over TLS, on a loaded machine, that was longer than the 128 arrivals
 *   the previous rule, the oldest of all, gave it). A flood from more than
 *   POGO_ADMIT_MAX addresses, one connection each, can still take turns
 *   with it: each pending handshake then lasts at least POGO_ADMIT_MAX
 *   arrivals.
 * - A handshake not finished in timeout_ms is closed anyway (mesh.c's tick).
 * - Evictions are logged at most once a second, with how many there were.
 */
#include <string.h>

#include "dist/dist.h"


/* Length of the host part of "host:port" or "[v6]:port". */
static size_t host_len(const char *addr) {
  const char *colon = strrchr(addr, ':');
  return colon ? (size_t)(colon - addr) : strlen(addr);
}

static int same_host(const char *a, const char *b) {
  size_t la = host_len(a), lb = host_len(b);
  return la == lb && memcmp(a, b, la) == 0;
}

static int pending_in(const pogo_conn *o) { return !o->outgoing && o->state == CS_HANDSHAKE; }

static void evict(pogo_dist *d, pogo_conn *o) {
  d->evicted.n++;
  pogo_conn_close(o);
}

void pogo_admit(pogo_dist *d, pogo_conn *c) {
  uint32_t total = 0, here = 0;
  pogo_conn *oldest = NULL, *oldest_here = NULL; /* d->conns is newest first */
  for (pogo_conn *o = d->conns; o; o = o->next) {
    if (o == c || !pending_in(o)) continue;
    total++;
    oldest = o;
    if (same_host(o->addr, c->addr)) {
      here++;
      oldest_here = o;
    }
  }
  /* (total counts the others: at most POGO_ADMIT_MAX, so one eviction makes room) */
  pogo_conn *victim = NULL;
  if (here >= POGO_ADMIT_PER_ADDR) victim = oldest_here;
  else if (total >= POGO_ADMIT_MAX) victim = oldest_here ? oldest_here : oldest;
  if (victim) evict(d, victim);
  if (pogo_log_due(d, &d->evicted)) {
    pogo_log_line(d, "too many unauthenticated connections (latest from %.*s): closed the oldest %u", (int)host_len(c->addr),
                  c->addr, (unsigned)d->evicted.n);
    d->evicted.n = 0;
  }
}
