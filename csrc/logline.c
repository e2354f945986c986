/*
 * logline.c: one log line of the C core, handed to pogo.log, or written on
 * stderr in pogo.log's own format when pogo.log cannot take it.
 *
 * Contract
 * - pogo_logline_emit(N, level, module, msg, key, value) calls Lua's
 *   pogo.log.emit(level, msg, {module = module, [key] = value}) in a
 *   protected call, so pogo.log's level and handler apply to the core's lines
 *   as to every line of the node. It returns 1 when pogo.log took the line,
 *   0 when it could not run: pogo.log not loaded, the Lua state closing, no
 *   Lua stack or memory left, emit raising. The caller must be where a Lua
 *   call is safe (a loop callback, after a failed pcall; never the
 *   allocator). `key` may be NULL (no field).
 * - pogo_logline_stderr(node, level, module, msg, key, value) writes the same
 *   line on stderr without allocating, as pogo.log.format does: the ISO time
 *   in UTC with milliseconds, the level, the node ("nonode@nohost" for
 *   NULL), the message with control characters escaped, then module= and
 *   key=value, a value quoted when it is empty or holds white space, '=',
 *   quotes, backslashes or control characters.
 * - The transport's lines (dist/log.c, module pogo.dist, a peer field) and
 *   the runtime's own reports (guard.c, module pogo, a traceback field) both
 *   go through these two.
 */
#include <stdio.h>
#include <time.h>

#include "runtime.h"

/* One character as pogo.log writes it: control characters escaped, and in a
 * quoted value quotes and backslashes too. */
static void put_char(unsigned char ch, int quoted) {
  if (ch == '\n') fputs("\\n", stderr);
  else if (ch == '\r') fputs("\\r", stderr);
  else if (ch == '\t') fputs("\\t", stderr);
  else if (ch < 0x20 || ch == 0x7f) fprintf(stderr, "\\x%02x", ch);
  else if (quoted && (ch == '"' || ch == '\\')) fprintf(stderr, "\\%c", ch);
  else fputc(ch, stderr);
}

/* A key=value value: quoted when empty or when it holds white space, '=',
 * quotes, backslashes or control characters. */
static void put_value(const char *s) {
  int quoted = !*s;
  for (const char *p = s; *p && !quoted; p++) {
    unsigned char ch = (unsigned char)*p;
    quoted = ch <= 0x20 || ch == 0x7f || ch == '"' || ch == '=' || ch == '\\';
  }
  if (quoted) fputc('"', stderr);
  for (; *s; s++) put_char((unsigned char)*s, quoted);
  if (quoted) fputc('"', stderr);
}

void pogo_logline_stderr(const char *node, const char *level, const char *module, const char *msg,
                         const char *key, const char *value) {
  uv_timeval64_t tv;
  char stamp[40] = "?";
  if (uv_gettimeofday(&tv) == 0) {
    time_t secs = (time_t)tv.tv_sec;
    struct tm tm;
    if (gmtime_r(&secs, &tm)) {
      size_t k = strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
      snprintf(stamp + k, sizeof stamp - k, ".%03dZ", (int)(tv.tv_usec / 1000));
    }
  }
  fprintf(stderr, "%s %s %s ", stamp, level, node ? node : "nonode@nohost");
  for (const char *p = msg; *p; p++) put_char((unsigned char)*p, 0);
  fprintf(stderr, " module=%s", module);
  if (key && value) {
    fprintf(stderr, " %s=", key);
    put_value(value);
  }
  fputc('\n', stderr);
  fflush(stderr);
}

typedef struct logline {
  const char *level, *module, *msg, *key, *value;
} logline;

/* pogo.log.emit(level, msg, {module =, [key] = value}) -> true, or false when
 * pogo.log is not loaded. Runs under lua_pcall. */
static int emit(lua_State *L) {
  const logline *e = lua_touserdata(L, 1);
  lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  if (lua_getfield(L, -1, "pogo.log") != LUA_TTABLE || lua_getfield(L, -1, "emit") != LUA_TFUNCTION) {
    lua_pushboolean(L, 0);
    return 1;
  }
  lua_pushstring(L, e->level);
  lua_pushstring(L, e->msg);
  lua_createtable(L, 0, 2);
  lua_pushstring(L, e->module);
  lua_setfield(L, -2, "module");
  if (e->key && e->value) {
    lua_pushstring(L, e->value);
    lua_setfield(L, -2, e->key);
  }
  lua_call(L, 3, 0);
  lua_pushboolean(L, 1);
  return 1;
}

int pogo_logline_emit(pogo_node *N, const char *level, const char *module, const char *msg, const char *key,
                      const char *value) {
  lua_State *L = N->L;
  if (!L || N->closed || !lua_checkstack(L, 4)) return 0;
  int top = lua_gettop(L);
  logline e = {level, module, msg, key, value};
  lua_pushcfunction(L, emit);
  lua_pushlightuserdata(L, &e);
  int ok = lua_pcall(L, 1, 1, 0) == LUA_OK && lua_toboolean(L, -1);
  lua_settop(L, top);
  return ok;
}
