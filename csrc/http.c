/*
 * http.c: an HTTP/1.1 server on the node's libuv loop. Requests are parsed
 * by http_parser (http_request.c) and handed to a process as messages; the
 * process answers with bytes it composed (lua/pogo/http.lua), so the C side
 * knows nothing of routes, JSON or event streams.
 *
 * Lua API (core.*)
 *   http_listen(host, port, pid) -> server, port | nil, err
 *       Listen on host:port (an IP address; port 0 = any free port). Each
 *       request goes to `pid` as
 *         {"$http", id, method, target, headers, body | nil, keep_alive}
 *       (`id` names the connection's current request; header names are in
 *       lower case, repeated ones joined with ", ").
 *   server:write(id, bytes [, fin]) -> boolean
 *       Write part of the answer to request `id`. fin nil: more follows (an
 *       event stream writes for as long as it likes); "keep": the answer is
 *       complete, and the connection reads the next request if the client
 *       keeps it alive; "close": complete, then the connection closes.
 *       false when the connection is gone (the client left: stop streaming)
 *       or more than HTTP_QUEUE_MAX bytes wait to be written (it is closed).
 *   server:port(), server:connections(), server:close() (also on __gc).
 *
 * Connections
 * - At most HTTP_MAX_CONNS at once; more are accepted and closed. At most
 *   a batch is accepted per turn of the loop (acceptor.c), so clients that
 *   reconnect as fast as they are closed cannot hold the node's loop.
 * - One request at a time per connection: while it is being answered the
 *   connection reads ahead (up to HTTP_BUF_MAX bytes, then it stops reading)
 *   so that a client that leaves is noticed, and pipelined requests wait.
 * - A malformed request, or one past a limit, is answered with its status
 *   (400, 413, 431) by this file, and the connection closes.
 * - Timeouts (checked every second): a connection that has not sent a whole
 *   request within HTTP_IDLE_MS closes (slow or idle clients); a request no
 *   process answered within HTTP_ANSWER_MS gets 503 (the process died or
 *   forgot it); a closing connection whose client does not close its end
 *   within HTTP_CLOSE_MS is closed.
 * - A response ends with a graceful close when asked: the write side is shut
 *   once everything is written, and the socket closed after (never an RST
 *   that could lose the end of the answer).
 *
 * Ownership: the server is a userdata; its listener and timer live in a
 * separate block freed by their close callbacks, and each connection is its
 * own allocation freed by its handle's close callback. Closing detaches
 * them first (s = NULL), so no callback reaches freed memory.
 */
#include <stdlib.h>
#include <string.h>

#include "runtime.h"
#include "http.h"
#include "http_request.h"
#include "acceptor.h"

#define HTTP_MT "pogo.http_server"
#define HTTP_MAX_CONNS 128
#define HTTP_READ_CHUNK (16 * 1024)
#define HTTP_BUF_MAX (POGO_HTTP_HEAD_MAX + POGO_HTTP_BODY_MAX + HTTP_READ_CHUNK)
#define HTTP_IDLE_MS 15000
#define HTTP_ANSWER_MS 60000
#define HTTP_CLOSE_MS 2000
#define HTTP_QUEUE_MAX (8 * 1024 * 1024)

enum { HC_READING = 1, HC_ANSWERING, HC_CLOSING, HC_DEAD };

typedef struct http_server http_server;

typedef struct http_conn {
  uv_tcp_t tcp;
  uv_shutdown_t sreq;
  http_server *s; /* NULL once closed */
  struct http_conn *next, *prev;
  uint64_t id;    /* of the request being answered (a new one per request) */
  int state;
  int reading, started, shut, eof;
  uint64_t since; /* when the state began (loop ms) */
  size_t queued;  /* bytes given to uv_write and not yet written */
  char *buf;      /* bytes read and not yet parsed */
  size_t len, cap;
  pogo_http_req req;
} http_conn;

typedef struct http_uv {
  uv_tcp_t listener;
  uv_timer_t timer;
  pogo_acceptor acceptor; /* a batch of accepts per turn of the loop */
  int open;
  http_server *s; /* NULL once closed */
} http_uv;

struct http_server {
  pogo_node *N;
  http_uv *uv;
  http_conn *conns;
  uint32_t nconns;
  uint64_t next_id;
  pogo_id pid;
  int port;
};

typedef struct http_write {
  uv_write_t req;
  http_conn *c;
  size_t len;
  char data[];
} http_write;

static uint64_t now_ms(http_server *s) { return uv_now(s->N->loop); }

/* ---- closing ---- */

static void set_reading(http_conn *c, int on);

static void conn_close_cb(uv_handle_t *h) {
  http_conn *c = h->data;
  pogo_http_req_free(&c->req);
  free(c->buf);
  free(c);
}

static void conn_close(http_conn *c) {
  http_server *s = c->s;
  if (c->state == HC_DEAD) return;
  if (s) {
    if (c->prev) c->prev->next = c->next;
    else s->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    s->nconns--;
  }
  c->s = NULL;
  c->state = HC_DEAD;
  uv_close((uv_handle_t *)&c->tcp, conn_close_cb);
}

static void shutdown_cb(uv_shutdown_t *req, int status) {
  http_conn *c = req->data;
  (void)status; /* the socket closes on the client's EOF (maybe seen already) or after HTTP_CLOSE_MS */
  if (c->state != HC_DEAD && c->eof) conn_close(c);
}

/* In HC_CLOSING: shut the write side once everything is written. */
static void maybe_shutdown(http_conn *c) {
  if (c->state != HC_CLOSING || c->queued || c->shut) return;
  c->shut = 1;
  c->sreq.data = c;
  if (uv_shutdown(&c->sreq, (uv_stream_t *)&c->tcp, shutdown_cb) != 0) conn_close(c);
}

/* The answer is complete and the connection closes: shut the write side once
 * written, read (and drop) what comes until the client's EOF. */
static void conn_finish(http_conn *c) {
  c->state = HC_CLOSING;
  c->since = now_ms(c->s);
  c->len = 0;
  if (!c->eof) set_reading(c, 1);
  if (c->state == HC_CLOSING) maybe_shutdown(c);
}

/* ---- writing ---- */

static void write_cb(uv_write_t *req, int status) {
  http_write *w = (http_write *)req;
  http_conn *c = w->c;
  c->queued -= w->len;
  free(w);
  if (c->state == HC_DEAD) return;
  if (status < 0) {
    conn_close(c);
    return;
  }
  maybe_shutdown(c);
}

/* Write n bytes: what the socket takes now, the rest through uv_write. 0, or -1. */
static int conn_write(http_conn *c, const char *p, size_t n) {
  if (n == 0) return 0;
  if (c->queued == 0) {
    uv_buf_t b = uv_buf_init((char *)p, (unsigned int)n);
    int k = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
    if (k == UV_EAGAIN || k == UV_ENOSYS) k = 0;
    if (k < 0) return -1;
    p += k;
    n -= (size_t)k;
    if (n == 0) return 0;
  }
  if (c->queued + n > HTTP_QUEUE_MAX) return -1;
  http_write *w = malloc(sizeof *w + n);
  if (!w) return -1;
  w->c = c;
  w->len = n;
  memcpy(w->data, p, n);
  uv_buf_t b = uv_buf_init(w->data, (unsigned int)n);
  if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, write_cb) != 0) {
    free(w);
    return -1;
  }
  c->queued += n;
  pogo_host_io_queued(c->s->N);
  return 0;
}

static const char *reason_of(int status) {
  switch (status) {
  case 413: return "Payload Too Large";
  case 431: return "Request Header Fields Too Large";
  case 503: return "Service Unavailable";
  default: return "Bad Request";
  }
}

/* Answer with `status` and a one-line text body, then close. */
static void conn_refuse(http_conn *c, int status) {
  char msg[256];
  const char *why = reason_of(status);
  int n = snprintf(msg, sizeof msg,
                   "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %zu\r\n"
                   "Connection: close\r\n\r\n%s\n",
                   status, why, strlen(why) + 1, why);
  if (conn_write(c, msg, (size_t)n) != 0) {
    conn_close(c);
    return;
  }
  conn_finish(c);
}

/* ---- reading ---- */

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  (void)suggested;
  http_conn *c = h->data;
  if (c->cap - c->len < HTTP_READ_CHUNK && c->cap < HTTP_BUF_MAX) {
    size_t cap = c->cap ? c->cap * 2 : HTTP_READ_CHUNK;
    while (cap - c->len < HTTP_READ_CHUNK) cap *= 2;
    if (cap > HTTP_BUF_MAX) cap = HTTP_BUF_MAX;
    char *nb = realloc(c->buf, cap);
    if (nb) {
      c->buf = nb;
      c->cap = cap;
    }
  }
  size_t room = c->cap - c->len;
  *buf = uv_buf_init(room ? c->buf + c->len : NULL, (unsigned int)room);
}

static void read_cb(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf);

static void set_reading(http_conn *c, int on) {
  if (on == c->reading || c->state == HC_DEAD) return;
  if (on) {
    if (uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb) != 0) {
      conn_close(c);
      return;
    }
  } else {
    uv_read_stop((uv_stream_t *)&c->tcp);
  }
  c->reading = on;
}

/* Hand the request in c->req to the server's process: 0, or -1 (it is gone). */
static int deliver(http_conn *c) {
  http_server *s = c->s;
  pogo_node *N = s->N;
  lua_State *L = N->L;
  pogo_http_req *r = &c->req;
  if (!lua_checkstack(L, 8)) return -1;
  int top = lua_gettop(L);
  c->id = ++s->next_id;
  lua_createtable(L, 7, 0);
  lua_pushliteral(L, "$http");
  lua_rawseti(L, -2, 1);
  lua_pushinteger(L, (lua_Integer)c->id);
  lua_rawseti(L, -2, 2);
  lua_pushstring(L, r->method ? r->method : "GET");
  lua_rawseti(L, -2, 3);
  lua_pushlstring(L, r->head + r->target, r->target_len);
  lua_rawseti(L, -2, 4);
  lua_createtable(L, 0, (int)r->nfields);
  for (uint32_t i = 0; i < r->nfields; i++) {
    const pogo_http_field *f = &r->fields[i];
    lua_pushlstring(L, r->head + f->name, f->name_len);
    lua_pushvalue(L, -1);
    if (lua_rawget(L, -3) == LUA_TSTRING) { /* a repeated header: "a, b" */
      lua_pushliteral(L, ", ");
      lua_pushlstring(L, r->head + f->value, f->value_len);
      lua_concat(L, 3);
    } else {
      lua_pop(L, 1);
      lua_pushlstring(L, r->head + f->value, f->value_len);
    }
    lua_rawset(L, -3);
  }
  lua_rawseti(L, -2, 5);
  if (r->body_len) {
    lua_pushlstring(L, r->body, r->body_len);
    lua_rawseti(L, -2, 6);
  }
  lua_pushboolean(L, r->keep_alive);
  lua_rawseti(L, -2, 7);
  int ok = pogo_mailbox_post(N, L, &s->pid, -1);
  lua_settop(L, top);
  return ok ? 0 : -1;
}

/* Parse what was read. In HC_READING, a whole request is handed over (the
 * connection then answers it); an error is answered and closes it. */
static void conn_parse(http_conn *c) {
  if (c->state != HC_READING) {
    set_reading(c, !c->eof && c->len < HTTP_BUF_MAX); /* read ahead, within bounds */
    return;
  }
  size_t used = 0;
  int r = pogo_http_req_feed(&c->req, c->buf, c->len, &used);
  if (used) {
    memmove(c->buf, c->buf + used, c->len - used);
    c->len -= used;
  }
  if (r == POGO_HTTP_ERROR) {
    set_reading(c, 0);
    conn_refuse(c, c->req.status);
  } else if (r == POGO_HTTP_DONE) {
    c->state = HC_ANSWERING;
    c->started = 0;
    c->since = now_ms(c->s);
    if (deliver(c) != 0) {
      set_reading(c, 0);
      conn_refuse(c, 503);
      return;
    }
    set_reading(c, !c->eof && c->len < HTTP_BUF_MAX);
  } else {
    set_reading(c, 1);
  }
}

static void read_cb(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf) {
  (void)buf;
  http_conn *c = st->data;
  if (c->state == HC_DEAD || nread == 0) return;
  if (nread < 0) {
    /* the client closed its side (or failed): a connection closing or
     * reading, or one whose answer has begun (a stream), ends now; one that
     * waits for its answer keeps its write side for it (a half-close) */
    set_reading(c, 0);
    c->eof = 1;
    if (c->state == HC_ANSWERING && !c->started && nread == UV_EOF) {
      c->req.keep_alive = 0;
      return;
    }
    if (c->state == HC_CLOSING && c->queued) return; /* closed once written (shutdown_cb) */
    conn_close(c);
    return;
  }
  c->len += (size_t)nread;
  if (c->state == HC_CLOSING) {
    c->len = 0; /* only waiting for its EOF */
    return;
  }
  conn_parse(c);
}

static void on_connection(uv_stream_t *srv, int status) {
  http_uv *u = srv->data;
  http_server *s = u->s;
  if (!s || status < 0 || !pogo_acceptor_take(&u->acceptor)) return;
  http_conn *c = calloc(1, sizeof *c);
  if (!c || uv_tcp_init(s->N->loop, &c->tcp) != 0) {
    free(c);
    pogo_acceptor_later(&u->acceptor);
    return;
  }
  c->tcp.data = c;
  c->state = HC_READING;
  pogo_http_req_init(&c->req);
  if (uv_accept(srv, (uv_stream_t *)&c->tcp) != 0 || s->nconns >= HTTP_MAX_CONNS) {
    uv_close((uv_handle_t *)&c->tcp, conn_close_cb);
    return;
  }
  c->s = s;
  c->next = s->conns;
  if (s->conns) s->conns->prev = c;
  s->conns = c;
  s->nconns++;
  c->since = now_ms(s);
  uv_tcp_nodelay(&c->tcp, 1);
  set_reading(c, 1);
}

static void timer_cb(uv_timer_t *t) {
  http_uv *u = t->data;
  http_server *s = u->s;
  if (!s) return;
  uint64_t now = now_ms(s);
  for (http_conn *c = s->conns, *next; c; c = next) {
    next = c->next;
    uint64_t age = now - c->since;
    if (c->state == HC_READING && age > HTTP_IDLE_MS) conn_close(c);
    else if (c->state == HC_ANSWERING && !c->started && age > HTTP_ANSWER_MS) conn_refuse(c, 503);
    else if (c->state == HC_CLOSING && age > HTTP_CLOSE_MS) conn_close(c);
  }
}

/* ---- the server ---- */

static void uv_block_close_cb(uv_handle_t *h) {
  http_uv *u = h->data;
  if (--u->open == 0) free(u);
}

static void server_close(http_server *s) {
  while (s->conns) conn_close(s->conns);
  http_uv *u = s->uv;
  if (!u) return;
  s->uv = NULL;
  u->s = NULL;
  uv_close((uv_handle_t *)&u->listener, uv_block_close_cb);
  uv_close((uv_handle_t *)&u->timer, uv_block_close_cb);
  uv_close((uv_handle_t *)&u->acceptor.check, uv_block_close_cb);
}

static http_server *check_server(lua_State *L) { return luaL_checkudata(L, 1, HTTP_MT); }

static http_conn *find_conn(http_server *s, uint64_t id) {
  for (http_conn *c = s->conns; c; c = c->next)
    if (c->id == id && c->state == HC_ANSWERING) return c;
  return NULL;
}

/* server:write(id, bytes [, fin]) -> boolean */
static int l_write(lua_State *L) {
  http_server *s = check_server(L);
  lua_Integer id = luaL_checkinteger(L, 2);
  size_t n;
  const char *p = luaL_checklstring(L, 3, &n);
  const char *fin = luaL_optstring(L, 4, NULL);
  if (fin && strcmp(fin, "keep") != 0 && strcmp(fin, "close") != 0)
    return luaL_argerror(L, 4, "nil, \"keep\" or \"close\" expected");
  http_conn *c = find_conn(s, (uint64_t)id);
  if (!c) {
    lua_pushboolean(L, 0);
    return 1;
  }
  if (conn_write(c, p, n) != 0) {
    conn_close(c);
    lua_pushboolean(L, 0);
    return 1;
  }
  c->started = 1;
  if (fin) {
    if (strcmp(fin, "keep") == 0 && c->req.keep_alive && !c->eof) {
      pogo_http_req_next(&c->req);
      c->state = HC_READING;
      c->since = now_ms(s);
      conn_parse(c); /* a pipelined request may be waiting */
    } else {
      conn_finish(c);
    }
  }
  lua_pushboolean(L, 1);
  return 1;
}

static int l_port(lua_State *L) {
  lua_pushinteger(L, check_server(L)->port);
  return 1;
}

static int l_connections(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)check_server(L)->nconns);
  return 1;
}

static int l_close(lua_State *L) {
  server_close(check_server(L));
  return 0;
}

/* http_listen(host, port, pid) -> server, port | nil, err */
static int l_http_listen(lua_State *L) {
  pogo_node *N = POGO_NODE(L);
  const char *host = luaL_checkstring(L, 1);
  lua_Integer port = luaL_checkinteger(L, 2);
  pogo_id pid;
  if (port < 0 || port > 65535) return luaL_argerror(L, 2, "a port from 0 to 65535 expected");
  if (!pogo_ident_is_pid(L, 3, &pid) || pid.node != 0) return luaL_argerror(L, 3, "a local pid expected");
  struct sockaddr_storage ss;
  if (uv_ip4_addr(host, (int)port, (struct sockaddr_in *)&ss) != 0 &&
      uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)&ss) != 0) {
    lua_pushnil(L);
    lua_pushfstring(L, "cannot listen on %s: not an IP address", host);
    return 2;
  }
  http_uv *u = calloc(1, sizeof *u);
  if (!u) return luaL_error(L, "out of memory");
  http_server *s = lua_newuserdatauv(L, sizeof *s, 0);
  memset(s, 0, sizeof *s);
  s->N = N;
  s->pid = pid;
  luaL_setmetatable(L, HTTP_MT);
  uv_tcp_init(N->loop, &u->listener);
  uv_timer_init(N->loop, &u->timer);
  u->listener.data = u->timer.data = u;
  pogo_acceptor_init(&u->acceptor, N->loop, (uv_stream_t *)&u->listener, on_connection, u);
  u->open = 3;
  u->s = s;
  s->uv = u;
  int r = uv_tcp_bind(&u->listener, (struct sockaddr *)&ss, 0);
  if (r == 0) r = uv_listen((uv_stream_t *)&u->listener, 128, on_connection);
  if (r != 0) {
    server_close(s);
    lua_pushnil(L);
    lua_pushfstring(L, "cannot listen on %s:%d: %s", host, (int)port, uv_strerror(r));
    return 2;
  }
  int len = sizeof ss;
  if (uv_tcp_getsockname(&u->listener, (struct sockaddr *)&ss, &len) == 0)
    s->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                             : ((struct sockaddr_in *)&ss)->sin_port);
  uv_timer_start(&u->timer, timer_cb, 1000, 1000);
  pogo_host_wake(N);
  lua_pushinteger(L, s->port);
  return 2;
}

void pogo_http_register(lua_State *L) {
  static const luaL_Reg methods[] = {{"write", l_write}, {"port", l_port}, {"connections", l_connections},
                                     {"close", l_close}, {NULL, NULL}};
  if (luaL_newmetatable(L, HTTP_MT)) {
    lua_newtable(L);
    luaL_setfuncs(L, methods, 0);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, l_close);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  static const luaL_Reg fns[] = {{"http_listen", l_http_listen}, {NULL, NULL}};
  pogo_node_setfuncs(L, fns);
}
