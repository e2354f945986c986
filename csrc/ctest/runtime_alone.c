/*
 * runtime_alone.c: the process runtime builds and runs without the transport.
 *
 * Built from the runtime's objects and the codec only (no csrc/dist/ source,
 * no OpenSSL; see CMakeLists.txt), it opens a Lua state, creates a node,
 * registers only the runtime's functions as the global `core`, and runs
 * spawn, send, receive, link, monitor and exit, checking every result. Then
 * it does the same to a pid of another node: with no transport every node is
 * "not connected", so messages are dropped (but must still be serializable),
 * links get "noconnection" and monitors fire {"DOWN", ref, pid | {name, node},
 * "noconnection"} (remote.h). Exit status 0 on success.
 *
 * Run by spec/support/run_tests.sh (from $BUILD/ctest); it needs luv on
 * LUA_CPATH (the Makefile exports it).
 */
#include <stdio.h>
#include <string.h>
#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

#include "runtime.h"
#include "node.h"

static const char *SCRIPT =
  "local core, remote_pid = ...\n"
  "local function expect(ok, what) if not ok then error('runtime_alone: ' .. what, 2) end end\n"
  "local function down(m, ref, who, reason)\n"
  "  return type(m) == 'table' and m[1] == 'DOWN' and m[2] == ref and m[3] == who and m[4] == reason\n"
  "end\n"
  "local me = core.self()\n"
  /* spawn, send, receive */
  "local echo = core.spawn(function()\n"
  "  while true do\n"
  "    local m = core.receive()\n"
  "    if m == 'stop' then return end\n"
  "    core.send(m[1], {'echo', m[2]})\n"
  "  end\n"
  "end)\n"
  "expect(core.is_pid(echo) and core.alive(echo), 'spawn gives a live pid')\n"
  "core.send(echo, {me, 42})\n"
  "local r = core.receive(1000)\n"
  "expect(type(r) == 'table' and r[1] == 'echo' and r[2] == 42, 'send and receive')\n"
  "core.register('echo', echo)\n"
  "core.send('echo', {me, 7})\n"
  "r = core.receive(1000)\n"
  "expect(r and r[2] == 7, 'send to a registered name')\n"
  /* monitor */
  "local ref = core.monitor(echo)\n"
  "core.send(echo, 'stop')\n"
  "expect(down(core.receive(1000), ref, echo, 'normal'), 'monitor: DOWN normal')\n"
  "expect(core.whereis('echo') == nil and not core.alive(echo), 'an exited process is gone with its name')\n"
  "ref = core.monitor(echo)\n"
  "expect(down(core.receive(1000), ref, echo, 'noproc'), 'monitor of a dead pid: DOWN noproc')\n"
  /* link: a crash reaches the main chunk (which traps) as EXIT */
  "local crasher = core.spawn_link(function() core.receive(); error('boom') end)\n"
  "core.send(crasher, 'go')\n"
  "r = core.receive(1000)\n"
  "expect(r and r[1] == 'EXIT' and r[2] == crasher and tostring(r[3].error):find('boom'), 'link: EXIT with the crash')\n"
  /* link between processes: the one that does not trap dies too */
  "local a = core.spawn(function() core.receive() end)\n"
  "local b = core.spawn(function() core.link(a); core.send(me, 'linked'); core.receive() end)\n"
  "expect(core.receive(1000) == 'linked', 'linked')\n"
  "local mb = core.monitor(b)\n"
  /* exit */
  "core.exit_signal(a, 'kill')\n"
  "expect(down(core.receive(1000), mb, b, 'killed'), 'exit kill: the linked process goes too')\n"
  "expect(not core.alive(a) and not core.alive(b), 'both gone')\n"
  "local t = core.spawn(function()\n"
  "  core.trap_exit(true); core.send(me, 'ready'); core.send(me, core.receive())\n"
  "end)\n"
  "expect(core.receive(1000) == 'ready', 'trapping process ready')\n"
  "core.exit_signal(t, 'shutdown')\n"
  "r = core.receive(1000)\n"
  "expect(r and r[1] == 'EXIT' and r[2] == me and r[3] == 'shutdown', 'exit signal trapped as EXIT')\n"
  /* a pid of another node, with no transport */
  "local node = 'far@127.0.0.1:1'\n"
  "local far = remote_pid(node, 5, 3)\n"
  "expect(core.is_pid(far) and core.node_of(far) == node and far ~= me, 'a remote-looking pid')\n"
  "core.send(far, {hello = 'there'})\n"
  "core.send({'svc', node}, 'hi')\n"
  "local ok, err = pcall(core.send, far, {handler = function() end})\n"
  "expect(not ok and err:find('msg.handler: function cannot be sent', 1, true), 'unserializable: ' .. tostring(err))\n"
  "ok, err = pcall(core.send, {'svc', node}, {co = coroutine.create(print)})\n"
  "expect(not ok and err:find('msg.co: coroutine cannot be sent', 1, true), 'unserializable by name: ' .. tostring(err))\n"
  "ok, err = pcall(core.send, {string.rep('x', 1025), node}, 1)\n"
  "expect(not ok and err:find('registered names are 1 to 1024 bytes long', 1, true), 'long name: ' .. tostring(err))\n"
  "core.link(far)\n"
  "r = core.receive(1000)\n"
  "expect(r and r[1] == 'EXIT' and r[2] == far and r[3] == 'noconnection', 'link: EXIT noconnection')\n"
  "local victim = core.spawn(function() core.link(far); core.receive() end)\n"
  "local mv = core.monitor(victim)\n"
  "expect(down(core.receive(1000), mv, victim, 'noconnection'), 'link from a process: it exits noconnection')\n"
  "ref = core.monitor(far)\n"
  "expect(down(core.receive(1000), ref, far, 'noconnection'), 'monitor: DOWN noconnection')\n"
  "expect(core.demonitor(ref) == false, 'that monitor is no longer active')\n"
  "ref = core.monitor({'svc', node})\n"
  "r = core.receive(1000)\n"
  "expect(r and r[1] == 'DOWN' and r[2] == ref and type(r[3]) == 'table' and r[3][1] == 'svc'\n"
  "       and r[3][2] == node and r[4] == 'noconnection', 'monitor by name: DOWN {name, node} noconnection')\n"
  "core.unlink(far)\n"
  "core.exit_signal(far, 'kill')\n"
  "expect(core.receive(50) == nil, 'unlink and exit to another node: nothing comes back')\n"
  "local info = core.process_info(me)\n"
  "expect(#info.links == 0 and #info.monitors == 0, 'no link or monitor left')\n"
  "return #core.processes()\n";

/* remote_pid(node_name, serial, slot) -> a pid of that node */
static int l_remote_pid(lua_State *L) {
  pogo_node *N = lua_touserdata(L, lua_upvalueindex(1));
  size_t len;
  const char *name = luaL_checklstring(L, 1, &len);
  pogo_id id = {.serial = (uint64_t)luaL_checkinteger(L, 2), .creation = 1, .slot = (uint32_t)luaL_checkinteger(L, 3),
                .kind = POGO_KIND_PID};
  id.node = pogo_nodenames_index(N, L, name, len);
  pogo_ident_push(N, L, &id);
  return 1;
}

int main(void) {
  lua_State *L = luaL_newstate();
  luaL_openlibs(L);
  lua_newtable(L);                  /* core */
  pogo_node *N = pogo_node_open(L); /* node userdata on the stack */
  pogo_node_register(L);            /* the runtime's functions only */
  lua_pop(L, 1);
  if (N->remote) {
    fprintf(stderr, "runtime_alone: a node without a transport has an ops table\n");
    return 1;
  }
  int rc = 0;
  if (luaL_loadstring(L, SCRIPT) != LUA_OK) {
    fprintf(stderr, "%s\n", lua_tostring(L, -1));
    return 1;
  }
  lua_insert(L, -2); /* script, core */
  lua_pushlightuserdata(L, N);
  lua_pushcclosure(L, l_remote_pid, 1);
  if (lua_pcall(L, 2, 1, 0) != LUA_OK) {
    fprintf(stderr, "%s\n", lua_tostring(L, -1));
    rc = 1;
  } else if (lua_tointeger(L, -1) != 1) {
    fprintf(stderr, "runtime_alone: %d processes left (only the main chunk's expected)\n", (int)lua_tointeger(L, -1));
    rc = 1;
  }
  lua_close(L);
  if (rc == 0) printf("runtime_alone: spawn, send, link, monitor and exit without the transport\n");
  return rc;
}
