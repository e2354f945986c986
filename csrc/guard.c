/*
 * guard.c: protected entries from libuv into Lua, and the runtime's log line.
 *
 * Contract
 * - libuv calls the node back from uv_run (the scheduler's idle handle, the
 *   transport's reads, timers and writes). Anything those callbacks do with
 *   the Lua state may raise: above all "not enough memory", when max_memory
 *   is reached or malloc itself fails. An error raised there would longjmp
 *   through uv_run (leaving libuv mid-iteration) into whatever Lua call is
 *   driving the loop, or end the interpreter. So each such callback runs its
 *   Lua work through pogo_guard: lua_pcall of a C trampoline on the node's
 *   main thread. A failure is logged with what was being done and reported
 *   to the caller, which decides what it drops (a message, a connection).
 * - pogo_guard keeps what fn returns on the stack when it succeeds (its
 *   caller pops it); on failure the stack is as it was.
 * - Callbacks that luv makes into Lua (uv timers, sockets, signals of user
 *   code and of bin/pogo) go through luv's callback runner, whose default
 *   ends the whole OS process (exit(-1)) when a callback raises, out of memory
 *   included. pogo_guard_luv installs one that logs the error (with a
 *   traceback) and goes on, as a node must.
 * - pogo_node_log logs one event at level error through pogo.log.emit
 *   (module "pogo"; a Lua traceback in the message goes into a traceback
 *   field), in a protected call, so that pogo.log's level and handler apply
 *   as to every line of the node. It runs only where a Lua call is safe (after
 *   the failed pcall, from the loop's callbacks; mem.c's from the scheduler's
 *   idle callback, never from the allocator). When that call cannot run (out
 *   of memory, the state closing, pogo.log not loaded), the line goes to
 *   stderr in pogo.log's default one-line format, without allocating.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <luv.h>

#include "runtime.h"

typedef struct guarded {
  int (*fn)(lua_State *L, void *arg);
  void *arg;
} guarded;

static int trampoline(lua_State *L) {
  guarded *g = lua_touserdata(L, 1);
  lua_remove(L, 1);
  return g->fn(L, g->arg);
}

int pogo_guard(pogo_node *N, int (*fn)(lua_State *L, void *arg), void *arg, const char *what, char *err,
               size_t errlen) {
  lua_State *L = N->L;
  guarded g = {fn, arg};
  if (!lua_checkstack(L, LUA_MINSTACK)) {
    pogo_node_log(N, "%s: no Lua stack left; skipped", what);
    if (err) snprintf(err, errlen, "Lua stack overflow");
    return LUA_ERRMEM;
  }
  lua_pushcfunction(L, trampoline);
  lua_pushlightuserdata(L, &g);
  int st = lua_pcall(L, 1, LUA_MULTRET, 0);
  if (st == LUA_OK) return st;
  const char *msg = st == LUA_ERRMEM ? "out of memory" : lua_tostring(L, -1);
  if (!msg) msg = "error object is not a string";
  if (what) pogo_node_log(N, "%s: %s", what, msg);
  if (err) snprintf(err, errlen, "%s", msg);
  lua_pop(L, 1);
  return st;
}

static int traceback(lua_State *L) {
  const char *msg = lua_tostring(L, 1);
  if (!msg) msg = lua_pushfstring(L, "(a %s value)", luaL_typename(L, 1));
  luaL_traceback(L, L, msg, 1);
  return 1;
}

/* luv_CFpcall: run the callback (function and nargs on the stack); its
 * results, or -status when it raised (logged, nothing left). */
static int luv_pcall(lua_State *L, int nargs, int nresults, int flags) {
  int base = lua_gettop(L) - nargs; /* the function's index */
  int handler = !(flags & LUVF_CALLBACK_NOTRACEBACK) && lua_checkstack(L, 2);
  if (handler) {
    lua_pushcfunction(L, traceback);
    lua_insert(L, base);
  }
  int st = lua_pcall(L, nargs, nresults, handler ? base : 0);
  if (handler) lua_remove(L, base);
  if (st == LUA_OK) return lua_gettop(L) - base + 1;
  pogo_node *N = pogo_node_of(L);
  if (N && !(flags & LUVF_CALLBACK_NOERRMSG)) {
    const char *msg = st == LUA_ERRMEM ? "out of memory" : lua_tostring(L, -1);
    pogo_node_log(N, "a luv callback raised (the node goes on): %s", msg ? msg : "(not a string)");
  }
  lua_pop(L, 1);
  return -st;
}

void pogo_guard_luv(lua_State *L) { luv_set_callback(L, luv_pcall); }

/* One event, through pogo.log (a protected call: its level and handler
 * apply), or on stderr in its format when that cannot run (no memory, the
 * state closing, pogo.log not loaded). `msg` may carry a Lua traceback after
 * "\nstack traceback:": it goes into the traceback field. */
static void node_log(pogo_node *N, char *msg) {
  const char *traceback = NULL;
  char *tb = strstr(msg, "\nstack traceback:");
  if (tb) {
    *tb = '\0';
    traceback = tb + 1;
  }
  if (pogo_logline_emit(N, "error", "pogo", msg, "traceback", traceback)) return;
  lua_State *L = N->L;
  const char *name = L && !N->closed && lua_checkstack(L, 2) ? pogo_nodenames_get(N, L, 0) : NULL;
  pogo_logline_stderr(name, "error", "pogo", msg, "traceback", traceback);
}

void pogo_node_log(pogo_node *N, const char *fmt, ...) {
  char buf[4096];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  node_log(N, buf);
}
