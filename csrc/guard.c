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
 * - pogo_node_log writes one line on stderr without allocating (it may run
 *   when memory is exhausted).
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

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

void pogo_node_log(pogo_node *N, const char *fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  const char *name = "?";
  if (N->L && !N->closed && lua_checkstack(N->L, 2)) name = pogo_nodenames_get(N, N->L, 0);
  fprintf(stderr, "pogo[%s]: %s\n", name ? name : "?", buf);
  fflush(stderr);
}
