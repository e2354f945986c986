/*
 * dist.h: the transport's one internal header: its state and the functions
 * its files call in each other. Files (csrc/dist/), bottom up:
 *   frame.c     length-prefixed frames and byte buffers (pure; frame.h)
 *   wire.c      data payloads once a connection is up (pure; wire.h)
 *   handshake.c handshake messages and HMAC proofs (pure; handshake.h)
 *   addr.c      node names and addresses (pure; addr.h)
 *   log.c       the transport's log lines, handed to pogo.log
 *   conn.c      one TCP connection: reading frames, batched writes, backlog
 *   tls.c       mutual TLS 1.3 on a connection (OpenSSL over libuv streams)
 *   auth.c      the handshake state machine
 *   admit.c     how many unauthenticated connections are kept, per address
 *   mesh.c      peers, dialing, gossip, heartbeats, node events
 *   discovery.c seeds read from DNS (c-ares driven by libuv)
 *   stats.c     counters of each link and the node, round-trip times (PING)
 *   outbound.c  the remote operations (remote.h ops): frames for remote pids
 *   inbound.c   frames from peers applied to local processes
 *   dist.c      the transport's lifetime and the core.dist_* Lua functions
 * The pure formats keep their own small headers because the fuzz targets
 * compile them alone; everything else is declared here.
 *
 * Ownership
 * - pogo_dist lives from pogo.start until the transport closes (a restart
 *   after pogo.stop, or the node's end); meanwhile it is the context of the
 *   node's ops table (N->remote_ctx). Its libuv handles live in a separate
 *   block (pogo_dist_uv) freed by their close callbacks; each connection is
 *   its own allocation freed by its handle's close callback. Closing detaches
 *   them (d = NULL) first, so no callback ever reaches freed state.
 * - Peers are indexed by node index (the runtime's node-name table,
 *   nodenames.c), so a remote pid's node field leads straight to its
 *   connection.
 * - The transport reaches the runtime only through runtime.h's functions
 *   (and reads N->L, N->loop, N->creation, N->ext, N->closed, and
 *   N->remote with N->remote_ctx to find its pogo_dist: see runtime.h).
 */
#ifndef POGO_DIST_H
#define POGO_DIST_H

#include "runtime.h"
#include "remote.h"
#include "dist/frame.h"
#include "dist/wire.h"
#include "dist/handshake.h"
#include "dist/addr.h"
#include "acceptor.h"

/* Connection states. */
enum {
  CS_CONNECTING = 1, /* outgoing TCP connect in progress */
  CS_HANDSHAKE,      /* exchanging HELLO .. ACK */
  CS_UP,             /* authenticated; carries data frames */
  CS_CLOSING,        /* BYE or REFUSE sent, write side shut, waiting for EOF */
  CS_DEAD            /* uv_close called; freed by the close callback */
};

/* The largest frame accepted by default: the largest message. Encoding one
 * blocks the sender's loop, decoding one the receiver's: measured (README),
 * 16 MiB takes at most about 0.6 s either way, well within timeout_ms. */
#define POGO_DEFAULT_MAX_FRAME (16 * 1024 * 1024)
#define POGO_FLUSH_AT (64 * 1024)       /* flush a connection's batch early above this */
#define POGO_BUSY_HIGH (4 * 1024 * 1024) /* a sender is suspended above this backlog */
#define POGO_BUSY_LOW (1024 * 1024)     /* ... and resumed below this one */
#define POGO_ADMIT_MAX 128              /* unauthenticated connections held at once */
#define POGO_ADMIT_PER_ADDR 16          /* ... of which from one peer address */
#define POGO_OWN_MAX 16                 /* discovered addresses found to reach this node itself, kept */

/* An address a dial of ours found to reach this node itself (mesh.c). */
typedef struct pogo_own_addr {
  char host[POGO_HOST_MAX];
  int port;
} pogo_own_addr;

typedef struct pogo_dist pogo_dist;

/* Events that a line reports at most once a second, with their count since
 * the last such line (log.c: pogo_log_due). */
typedef struct pogo_log_tally {
  uint32_t n;  /* events since the last line */
  uint64_t at; /* when that line was written (loop time, ms) */
} pogo_log_tally;
typedef struct pogo_conn pogo_conn;

/* Traffic counters (stats.c): process messages and frame bytes, each way. */
typedef struct pogo_link_stats {
  uint64_t msgs_in, msgs_out, bytes_in, bytes_out;
} pogo_link_stats;
typedef struct pogo_target pogo_target;
typedef struct pogo_tls pogo_tls;             /* tls.c: one connection's TLS */
typedef struct pogo_tls_ctx pogo_tls_ctx;     /* tls.c: the node's TLS settings */
typedef struct pogo_discovery pogo_discovery; /* discovery.c */
typedef struct pogo_log_q pogo_log_q;         /* log.c: lines waiting for pogo.log */

/* A host name being resolved for a dial; outlives its connection if need be. */
typedef struct pogo_gai {
  uv_getaddrinfo_t req;
  pogo_conn *c; /* NULL once the connection is gone */
} pogo_gai;

typedef struct pogo_conn {
  uv_tcp_t tcp;
  uv_connect_t creq;
  uv_write_t wreq;
  uv_shutdown_t sreq;
  pogo_dist *d;             /* NULL once dead */
  pogo_conn *next, *prev;   /* all connections of d */
  pogo_conn *dnext;         /* dirty list */
  int state;
  uint8_t outgoing, writing, dirty, hs_step, sent, shut;
  uint8_t cur_kind;         /* kind of the data frame being handled (conn.c) */
  pogo_frame_reader in;
  pogo_buf out, wbuf;       /* batch being filled, batch being written */
  size_t woff;              /* written part of wbuf */
  msgpack_packer pk;        /* appends to out */
  uint64_t t_state, last_recv;
  const char *fail;         /* deferred failure (static string) */
  char addr[POGO_HOST_MAX + 8]; /* "host:port" for logs (dialed or peer's) */
  /* handshake */
  unsigned char nonce_a[POGO_HS_NONCE], nonce_d[POGO_HS_NONCE];
  char *peer_name;
  size_t peer_name_len;
  uint32_t peer_creation, peer_max_frame;
  uint32_t peer;            /* node index once the name is known (0 = not yet) */
  pogo_target *target;      /* dialed for a seed or a connect request */
  pogo_gai *gai;            /* host name lookup in progress */
  pogo_tls *tls;            /* TLS state (NULL: a plain connection) */
  uint32_t dial_peer;       /* dialed by name for this node index */
  uint8_t self_probe;       /* incoming: a HELLO in this node's own name and creation was answered with a
                             * CHALLENGE, so that a dial of ours that reached this node recognises its nonce */
  /* senders suspended on this connection's backlog */
  pogo_rq_entry *busy;
  uint32_t nbusy, busy_cap;
  /* stats.c: traffic once up, the PING in flight (uv_hrtime ns, 0: none), round trips,
   * and the beats since the accepting side's last PING */
  pogo_link_stats stats;
  uint64_t ping_at, rtt_ns, rtt_avg_ns;
  uint8_t quiet_beats;
} pogo_conn;

typedef struct pogo_peer {
  pogo_conn *up;       /* the one connection carrying traffic */
  pogo_conn *dial;     /* our pending dial by name */
  uint8_t wanted;      /* keep (re)connecting */
  uint8_t seed;        /* learned from a seed: never forgotten */
  uint8_t blocked;     /* pogo.block: never connected until unblocked */
  uint8_t shunned;     /* disconnected on purpose: not even its seed entry redials */
  uint8_t left;        /* it stopped cleanly (BYE "shutdown"), or a peer said it left (LEFT): dialed again only as a seed */
  uint8_t gone_dns;    /* its address left DNS while it was connected: not redialed once lost */
  uint8_t logged;      /* a failure was logged since the last success */
  uint8_t unproven;    /* a handshake in its name ended unproven: its HELLOs no longer hold our dials */
  uint32_t backoff;    /* next retry delay, ms */
  uint64_t next_at;    /* earliest next dial (loop ms) */
  uint64_t down_since; /* when it was last lost (for forgetting) */
  uint32_t creation;
  char *dialer;        /* name of the node that dialed the up connection */
} pogo_peer;

/* A seed or a pogo.connect request, by address. */
struct pogo_target {
  pogo_target *next;
  char host[POGO_HOST_MAX];
  int port;
  char addr[POGO_HOST_MAX + 8];
  char *name;          /* learned from its handshake */
  uint8_t seed, logged;
  uint8_t unproven;    /* nameless: a handshake in a name at this address ended unproven (auth.c) */
  uint32_t found;      /* discovery round that last saw it (0: not discovered) */
  char err[POGO_HS_REASON_MAX + 64]; /* why its last dial failed ("": none did, or it came up since) */
  pogo_conn *dial;
  uint32_t backoff;
  uint64_t next_at;
  int waiters;         /* registry ref: array {pid, ref, pid, ref, ...} or LUA_NOREF */
};

typedef struct pogo_dist_uv {
  uv_tcp_t listener;
  uv_timer_t tick;   /* heartbeats and handshake timeouts */
  uv_timer_t dialt;  /* next (re)dial */
  uv_prepare_t prep; /* flush batched writes before the loop polls */
  pogo_acceptor acceptor; /* a batch of accepts per turn of the loop */
  int open;
  pogo_dist *d;
} pogo_dist_uv;

struct pogo_dist {
  pogo_node *N;
  pogo_dist_uv *uv;
  char *name;
  size_t name_len;
  char host[POGO_HOST_MAX];  /* where the listener listens */
  int port;
  char adv_host[POGO_HOST_MAX]; /* the address in the name (advertise; else host:port) */
  int adv_port;
  char *cookie;
  size_t cookie_len;
  uint32_t heartbeat_ms, timeout_ms, max_frame, backoff_min, backoff_max, forget_ms;
  int log;
  int stopping;      /* pogo.stop in progress: no new connections */
  int freeing;       /* pogo_mesh_free: the Lua state may be closing (no name lookups) */
  pogo_conn *conns;
  pogo_conn *dirty;
  pogo_peer **peers; /* by node index */
  uint32_t npeers;
  pogo_target *targets;
  uint64_t dial_due; /* when the dial timer is set to fire, 0 if stopped */
  int ref_subs;      /* monitor_nodes subscribers: pid -> true */
  pogo_tls_ctx *tls; /* NULL: plain links */
  pogo_discovery *disc;
  pogo_own_addr own[POGO_OWN_MAX]; /* discovered addresses that reached this node itself (a ring) */
  uint32_t nown;                   /* entries ever added (the ring holds the last POGO_OWN_MAX) */
  pogo_link_stats stats; /* the node's traffic, every link since pogo.start (stats.c) */
  pogo_log_q *logq;  /* NULL: lines go straight to stderr */
  pogo_log_tally evicted;    /* handshakes closed to make room (admit.c) */
  pogo_log_tally full_drops; /* messages dropped at max_memory (inbound.c) */
};

/* ---- log.c ---- */
/* pogo.log's levels. */
enum { POGO_LOG_DEBUG = 1, POGO_LOG_INFO, POGO_LOG_NOTICE, POGO_LOG_WARNING, POGO_LOG_ERROR };
void pogo_log_open(pogo_dist *d);  /* at the transport's start */
void pogo_log_close(pogo_dist *d); /* at its end: lines still queued go to stderr */
/* A line at `level` about `peer` (a node name or an address; NULL: none). */
void pogo_log_at(pogo_dist *d, int level, const char *peer, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* A line at level info, about no peer in particular. */
void pogo_log_line(pogo_dist *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Whether tally t has events and its line is due (a second since the last):
 * the caller writes it with t->n, which starts again at 0. */
int pogo_log_due(pogo_dist *d, pogo_log_tally *t);

/* ---- conn.c ---- */
pogo_conn *pogo_conn_new(pogo_dist *d, int outgoing);
int pogo_conn_read_start(pogo_conn *c);
/* Start a frame of `kind` (reserving `hint` bytes); returns its offset or -1. */
size_t pogo_conn_begin(pogo_conn *c, uint8_t kind, size_t hint);
/* Finish it (limit: the peer's max frame). 0, or -1 if too large (dropped). */
int pogo_conn_end(pogo_conn *c, size_t start);
void pogo_conn_cancel(pogo_conn *c, size_t start);
void pogo_conn_dirty(pogo_conn *c); /* flush before the loop next polls */
void pogo_conn_flush(pogo_conn *c);
size_t pogo_conn_backlog(const pogo_conn *c);
void pogo_conn_close(pogo_conn *c);          /* now */
void pogo_conn_close_graceful(pogo_conn *c); /* after what is queued is written */
void pogo_conn_wake_busy(pogo_conn *c);
/* Resume process e (pogo_sched_resume) once the backlog drains: 0, or -1. */
int pogo_conn_add_busy(pogo_conn *c, const pogo_rq_entry *e);
void pogo_conn_prepare_cb(uv_prepare_t *h);
/* Hand the complete frames in c->in to the handshake or the dispatch: 0, or
 * -1 once c is closed or closing (stop reading). */
int pogo_conn_frames(pogo_conn *c);
/* Write b (all of it): straight to the socket, the rest through uv_write
 * (b and c->wbuf are swapped). Only when !c->writing. */
void pogo_conn_write(pogo_conn *c, pogo_buf *b);
void pogo_conn_written(pogo_conn *c); /* everything queued is written */

/* ---- tls.c ---- */
/* Read opts.tls (table at opts_idx: {cert =, key =, ca =}) into d->tls: 0 (also
 * when absent), or -1 with a message naming the option and file in err. */
int pogo_tls_configure(pogo_dist *d, lua_State *L, int opts_idx, char *err, size_t errlen);
void pogo_tls_ctx_free(pogo_tls_ctx *t);
int pogo_tls_attach(pogo_conn *c); /* c gets its TLS state (d->tls set): 0, or -1 */
void pogo_tls_free(pogo_conn *c);
void pogo_tls_alloc(pogo_conn *c, uv_buf_t *buf);          /* room for ciphertext */
void pogo_tls_read(pogo_conn *c, const char *p, size_t n); /* ciphertext arrived */
void pogo_tls_flush(pogo_conn *c);                         /* encrypt c->out, write */
int pogo_tls_pending(const pogo_conn *c);                  /* ciphertext waits to be written */
/* A plain node's incoming connection failed to parse: if its first bytes are
 * a TLS ClientHello, log and refuse it so both sides say why: 1; else 0. */
int pogo_tls_refuse_tls(pogo_conn *c);

/* ---- auth.c ---- */
void pogo_auth_hello(pogo_conn *c); /* a dial connected: send HELLO */
/* A frame during the handshake: 0, or -1 if c was closed. */
int pogo_auth_on_frame(pogo_conn *c, const char *p, uint32_t n);
void pogo_auth_closing(pogo_conn *c); /* c is closing (notes an incoming handshake that never proved the cookie) */

/* ---- admit.c ---- */
/* c was just accepted: make room for it among the pending handshakes. */
void pogo_admit(pogo_dist *d, pogo_conn *c);

/* ---- mesh.c ---- */
int pogo_mesh_start(pogo_dist *d, lua_State *L, char *err, size_t errlen);
void pogo_mesh_stop(pogo_dist *d, lua_State *L, const char *reason); /* graceful */
void pogo_mesh_conn_lost(pogo_conn *c, const char *reason);
/* c is authenticated: it carries the traffic with its node from now on
 * (quiet: in place of another connection to the same incarnation). */
void pogo_mesh_conn_up(pogo_conn *c, lua_State *L, int quiet);
void pogo_mesh_bye(pogo_conn *c, const char *reason); /* the peer closes c */
void pogo_mesh_dial_failed(pogo_conn *c, lua_State *L, const char *reason);
void pogo_mesh_dial_abandon(pogo_conn *c); /* quietly: another connection will do */
/* Dial c reached this node itself (auth.c proved it: the CHALLENGE it read
 * carried the nonce of one of this node's own incoming handshakes). */
void pogo_mesh_dial_self(pogo_conn *c, lua_State *L);
/* Incoming c (c->d and c->peer_name set) ends without proving the cookie. */
void pogo_mesh_unproven(pogo_conn *c);
/* A pending connection about node idx (or host:port) other than `except`;
 * outgoing_only: our dials. */
pogo_conn *pogo_mesh_pending_for(pogo_dist *d, uint32_t idx, const char *host, int port, const pogo_conn *except,
                                 int outgoing_only);
void pogo_mesh_schedule(pogo_dist *d); /* arm the dial timer for the next due dial */
pogo_peer *pogo_mesh_peer(pogo_dist *d, uint32_t idx, int create);
pogo_conn *pogo_mesh_up(pogo_dist *d, uint32_t idx); /* up connection of a node or NULL */
/* Dial addr ("host:port" or a node name). Returns 1 with the node's name
 * pushed if it is already connected, 0 when the waiter (pid at pid_idx, ref
 * at ref_idx) will be told {ref, true, node} or {ref, false, reason}, -1 on
 * a bad address (err). */
int pogo_mesh_connect(pogo_dist *d, lua_State *L, const char *addr, int pid_idx, int ref_idx, char *err,
                      size_t errlen);
int pogo_mesh_disconnect(pogo_dist *d, lua_State *L, uint32_t idx, const char *reason);
void pogo_mesh_block(pogo_dist *d, lua_State *L, uint32_t idx, int flag);
void pogo_mesh_gossip_in(pogo_dist *d, lua_State *L, pogo_conn *c); /* names at -1 */
/* LEFT from peer c: that incarnation (creation) of node `name` left c's node on purpose. */
void pogo_mesh_left_in(pogo_dist *d, lua_State *L, pogo_conn *c, const char *name, size_t len, uint32_t creation);
/* monitor_nodes: the pid at pid_idx gets nodeup/nodedown messages (flag) or not. */
void pogo_mesh_subscribe(pogo_dist *d, lua_State *L, int pid_idx, int flag);
void pogo_mesh_free(pogo_dist *d);
int pogo_mesh_add_seed(pogo_dist *d, const char *addr, char *err, size_t errlen);
int pogo_mesh_finish_stop(pogo_dist *d); /* 1 once a stopped node has no connection left */
/* Discovery round `gen` saw host:port (a seed while it stays in DNS). */
int pogo_mesh_found(pogo_dist *d, const char *host, int port, uint32_t gen);
/* Round `gen` is complete: addresses found before and not in it are
 * forgotten (the node is no longer dialed; a connected one, once lost). */
void pogo_mesh_found_sweep(pogo_dist *d, lua_State *L, uint32_t gen);
/* dist_info's list of targets (address, seed, found, name, error) at -1. */
void pogo_mesh_push_targets(pogo_dist *d, lua_State *L);
/* dist_info's list of the addresses found to be this node's own ("host:port") at -1. */
void pogo_mesh_push_own(pogo_dist *d, lua_State *L);

/* ---- discovery.c ---- */
/* Read opts.discovery (table at opts_idx) and start polling DNS: 0 (also when
 * absent), or -1 with err. */
int pogo_discovery_start(pogo_dist *d, lua_State *L, int opts_idx, char *err, size_t errlen);
void pogo_discovery_stop(pogo_dist *d); /* pogo.stop, or the transport's end */
/* dist_info's `discovery` at -1 (nil without discovery): name, rounds, status,
 * error, addrs (the last complete round's). */
void pogo_discovery_push_info(pogo_dist *d, lua_State *L);

/* ---- stats.c ---- */
/* Count a frame of n bytes (length prefix included) on an up connection. */
static inline void pogo_stats_in(pogo_conn *c, size_t n) {
  c->stats.bytes_in += n;
  c->d->stats.bytes_in += n;
}
static inline void pogo_stats_out(pogo_conn *c, size_t n) {
  c->stats.bytes_out += n;
  c->d->stats.bytes_out += n;
}
/* Count a process message received or sent on c. */
static inline void pogo_stats_msg_in(pogo_conn *c) {
  c->stats.msgs_in++;
  c->d->stats.msgs_in++;
}
static inline void pogo_stats_msg_out(pogo_conn *c) {
  c->stats.msgs_out++;
  c->d->stats.msgs_out++;
}
/* A PING on c, unless one is unanswered (the link coming up: its round trip
 * is known at once, on both sides). */
void pogo_stats_ping(pogo_conn *c);
/* The heartbeat of an up connection: a PING unless one is unanswered (then a
 * TICK if nothing else went out since the last beat); on the accepting side,
 * a PING every few beats only, a TICK at the others if nothing went out
 * (stats.c). */
void pogo_stats_beat(pogo_conn *c);
/* A PING (answered with PONG) or PONG (a round trip measured) arrived. */
void pogo_stats_ping_in(pogo_conn *c, uint64_t token);
void pogo_stats_pong_in(pogo_conn *c, uint64_t token);
/* Adds core.dist_stats to the table at -2 (node userdata at -1). */
void pogo_stats_register(lua_State *L);

/* ---- outbound.c ---- */
/* The ops of remote.h (ctx is the pogo_dist). */
int pogo_outbound_send(void *ctx, lua_State *L, const pogo_id *to, int msg_idx, char err[POGO_CODEC_ERRLEN]);
int pogo_outbound_send_named(void *ctx, lua_State *L, uint32_t node, const char *name, size_t len, int msg_idx,
                             char err[POGO_CODEC_ERRLEN]);
int pogo_outbound_link(void *ctx, lua_State *L, const pogo_id *from, const pogo_id *to);
int pogo_outbound_unlink(void *ctx, lua_State *L, const pogo_id *from, const pogo_id *to);
int pogo_outbound_exit(void *ctx, lua_State *L, const pogo_id *from, const pogo_id *to, int reason_idx, int linked);
int pogo_outbound_monitor(void *ctx, lua_State *L, const pogo_id *watcher, uint64_t ref, const pogo_id *target);
int pogo_outbound_monitor_name(void *ctx, lua_State *L, const pogo_id *watcher, uint64_t ref, uint32_t node,
                               const char *name, size_t len);
int pogo_outbound_demonitor(void *ctx, lua_State *L, const pogo_id *watcher, uint64_t ref, const pogo_id *target);
int pogo_outbound_demonitor_name(void *ctx, lua_State *L, const pogo_id *watcher, uint64_t ref, uint32_t node,
                                 const char *name, size_t len);
int pogo_outbound_down(void *ctx, lua_State *L, const pogo_id *watcher, uint64_t ref, const pogo_id *who,
                       int reason_idx);
/* The up connection to node, or NULL (none, or this node is stopping). */
pogo_conn *pogo_outbound_conn(pogo_dist *d, uint32_t node);
/* EXIT and DOWN frames on c (also the answers to a peer's LINK or MONITOR of
 * a process that does not exist). */
void pogo_outbound_put_exit(pogo_dist *d, lua_State *L, pogo_conn *c, const pogo_id *from, const pogo_id *to,
                            int reason_idx, int linked);
void pogo_outbound_put_down(pogo_dist *d, lua_State *L, pogo_conn *c, const pogo_id *watcher, uint64_t ref,
                            const pogo_id *who, int reason_idx);

/* ---- inbound.c ---- */
/* A frame on an up connection: 0, or -1 if c was closed. */
int pogo_inbound_frame(pogo_conn *c, const char *p, uint32_t n);

/* ---- dist.c ---- */
pogo_dist *pogo_dist_of(pogo_node *N); /* the node's transport, or NULL (not started) */
/* Adds the core.dist_* functions to the table at -2 (node userdata at -1). */
void pogo_dist_register(lua_State *L);

#endif
