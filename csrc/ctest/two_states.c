/*
 * two_states.c: two Lua states in one OS process each run their own pogo node
 * (the core keeps no C global state). Each state spawns processes, ping-pongs
 * and stops; the two are stepped in turn from one thread, as a host that owns
 * its loop would. Exit status 0 on success.
 *
 * Run by spec/support/run_tests.sh (from $BUILD/ctest) with LUA_PATH/LUA_CPATH
 * pointing at the source tree and the build.
 */
#include <stdio.h>
#include <string.h>
#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

static const char *SCRIPT =
  "local pogo = require 'pogo'\n"
  "local tag = ...\n"
  "local me = pogo.self()\n"
  "local pong = pogo.spawn(function()\n"
  "  while true do local m = pogo.receive(); if m == 'stop' then return end; pogo.send(m[1], m[2] + 1) end\n"
  "end)\n"
  "pogo.register('pong', pong)\n"
  "local n = 0\n"
  "pogo.spawn(function()\n"
  "  for _ = 1, 1000 do pogo.send('pong', { pogo.self(), n }); n = pogo.receive() end\n"
  "  pogo.send(me, tag .. ':' .. n)\n"
  "end)\n"
  "return function() return pogo.step(), n end\n";

static lua_State *open_state(const char *tag) {
  lua_State *L = luaL_newstate();
  luaL_openlibs(L);
  if (luaL_loadstring(L, SCRIPT) != LUA_OK) { fprintf(stderr, "%s\n", lua_tostring(L, -1)); return NULL; }
  lua_pushstring(L, tag);
  if (lua_pcall(L, 1, 1, 0) != LUA_OK) { fprintf(stderr, "%s: %s\n", tag, lua_tostring(L, -1)); return NULL; }
  return L; /* the step function is on the stack */
}

/* Step a state once; returns its counter (or -1 on error). */
static long step(lua_State *L) {
  lua_pushvalue(L, -1);
  if (lua_pcall(L, 0, 2, 0) != LUA_OK) { fprintf(stderr, "%s\n", lua_tostring(L, -1)); return -1; }
  long n = (long)lua_tointeger(L, -1);
  lua_pop(L, 2);
  return n;
}

int main(void) {
  lua_State *a = open_state("a"), *b = open_state("b");
  if (!a || !b) return 1;
  long na = 0, nb = 0;
  for (int i = 0; i < 100000 && (na < 1000 || nb < 1000); i++) {
    na = step(a);
    nb = step(b);
    if (na < 0 || nb < 0) return 1;
  }
  /* each node's registry, pids and scheduler are its own; the main chunk is
   * host code now (it stepped the node), so it takes its message with
   * receive(0), which never waits */
  const char *check =
    "local pogo = require 'pogo'\n"
    "assert(pogo.whereis('pong'))\n"
    "pogo.step()\n"
    "return pogo.receive(0), #pogo.processes()\n";
  int rc = 0;
  lua_State *states[2] = {a, b};
  const char *want[2] = {"a:1000", "b:1000"};
  for (int i = 0; i < 2; i++) {
    lua_State *L = states[i];
    if (luaL_dostring(L, check) != LUA_OK) { fprintf(stderr, "%s\n", lua_tostring(L, -1)); rc = 1; continue; }
    const char *got = lua_tostring(L, -2);
    if (!got || strcmp(got, want[i]) != 0) { fprintf(stderr, "state %d: got %s\n", i, got ? got : "nil"); rc = 1; }
  }
  lua_close(a);
  lua_close(b);
  if (rc == 0) printf("two_states: two nodes in one process ran 1000 round trips each\n");
  return rc;
}
