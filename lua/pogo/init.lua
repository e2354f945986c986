--- pogo: a distributed supervisor for Lua 5.4.
--
-- Processes are Lua coroutines with mailboxes, scheduled on luv's loop.
-- Blocking calls (`receive`, `sleep`, `call`, ...) yield inside a process; from
-- the main chunk they drive the loop until done; from a luv callback, or from
-- host code once a host owns the loop (`fd`, `timeout`, `step`), they raise.
--
-- @module pogo
local core = require "pogo.core"
local log = require "pogo.log"
-- coroutines nested in a process are preempted too (csrc/nested.c): pogo's
-- resume and wrap, Lua's own outside a process, in place of Lua's
coroutine.resume, coroutine.wrap = core.resume, core.wrap -- luacheck: ignore 122
coroutine.close = core.close -- luacheck: ignore 122 (it refuses a process's own coroutine)

local M = {}

--- The version of pogo, as in its rockspec (`pogo-0.2.0-1`): "0.2.0".
M._VERSION = "0.2.0"

--- The logger (see `pogo.log`).
M.log = log

local c_receive, c_wait, check_block = core.receive, core.wait, core.check_block
local mbox_len, mbox_peek, mbox_take = core.mbox_len, core.mbox_peek, core.mbox_take
local mbox_find_ref, mbox_flush_down = core.mbox_find_ref, core.mbox_flush_down
local now, self, send = core.now, core.self, core.send
local is_pid = core.is_pid
local is_via, via_whereis = core.is_via, core.via_whereis

M.core = core

--- Start a process running `fn(...)`.
-- @function spawn
-- @tparam function fn the body
-- @return pid
M.spawn = core.spawn

--- Start a process linked to the caller.
-- @function spawn_link
-- @tparam function fn the body
-- @return pid
M.spawn_link = core.spawn_link

--- Start a process monitored by the caller.
-- @function spawn_monitor
-- @tparam function fn the body
-- @return pid, ref
M.spawn_monitor = core.spawn_monitor

--- The pid of the caller (the main chunk has one too).
-- @function self
M.self = self

--- Send `msg` to `dest` (a pid, a registered name, `{name, node}`, or
-- `{"via", module, name}`).
-- Local messages are not copied. Sending to a dead pid does nothing; to an
-- unregistered name raises `noproc`; to `{name, node}` whose node is not a
-- node name (`name@host:port`), or to a via name without its name, raises. `{"via", module, name}` names the pid
-- that `require(module).whereis(name)` returns, as Erlang's `{via, Module,
-- Name}`: `{"via", "pogo.registry", name}` is a cluster-wide name (see
-- `pogo.registry`); a module of one's own needs a `whereis(name) -> pid | nil`
-- that does not block, and a `register(name, pid) -> true | nil, reason, pid`
-- to name a `pogo.server`.
-- @function send
M.send = send

--- Whether a process is alive. For a pid of another node this asks that node
-- (it blocks like `rpc`, up to `timeout_ms`, default 5000); a node that cannot
-- be reached counts as not alive.
-- @param pid
-- @tparam[opt] integer timeout_ms
-- @treturn boolean
function M.alive(pid, timeout_ms)
  if not is_pid(pid) then error("pogo.alive: pid expected, got " .. type(pid), 2) end
  local node = core.node_of(pid)
  if node == core.node_name() then return core.alive(pid) end
  local ok, alive = M.rpc(node, "pogo.core", "alive", { pid }, timeout_ms or 5000)
  return ok and alive == true
end

--- Link the caller and `pid`.
-- @function link
M.link = core.link

--- Remove the link between the caller and `pid`.
-- @function unlink
M.unlink = core.unlink

--- Set whether the caller traps exit signals; returns the previous value.
-- @function trap_exit
M.trap_exit = core.trap_exit

--- Monitor `pid` (or a registered name, `{name, node}`, or `{"via", module,
-- name}`: the process it names now); returns a ref. The caller gets
-- `{"DOWN", ref, pid, reason}` when it exits (at once with "noproc" if it does not exist).
-- @function monitor
M.monitor = core.monitor

--- Register `pid` under `name` (a string).
-- @function register
M.register = core.register

--- Remove a registered name; returns whether it was registered.
-- @function unregister
M.unregister = core.unregister

--- The pid registered as `name`, or nil.
-- @function whereis
M.whereis = core.whereis

--- Names registered on this node.
-- @function registered
M.registered = core.registered

--- Sleep `ms` milliseconds (messages wait in the mailbox).
-- @function sleep
M.sleep = core.sleep

--- Let other ready processes run.
-- @function yield
M.yield = core.yield

--- A new unique reference.
-- @function make_ref
M.make_ref = core.make_ref

--- Whether `v` is a pid.
-- @function is_pid
M.is_pid = is_pid

--- Whether `v` is a ref.
-- @function is_ref
M.is_ref = core.is_ref

--- Run the loop until `pogo.stop()` (or until nothing can happen any more).
-- @function run
M.run = core.run

-- ---- hosts that own their loop (Prosody, cqueues, a C server: see the README) ----

-- Once the host uses fd, timeout or step, the main chunk is host code: it may
-- not block (core's blocking calls raise; call, rpc and connect check first,
-- before they send anything).
local c_fd, c_timeout, c_step = core.fd, core.timeout, core.step

--- A file descriptor that becomes readable when the node has work (libuv's
-- backend fd, an epoll fd on Linux). Watch it for reading and call
-- `pogo.step()` when it is. A `spawn` or `send` from host code makes it
-- readable too. The first call runs one non-blocking pass of the loop, as
-- `step` does, so that the wake-up is registered. From then on the main
-- chunk is host code: blocking calls made outside a process raise
-- "cannot block in host code".
-- @treturn integer
function M.fd()
  return c_fd()
end

--- Milliseconds until the node's next timer (process timeouts, heartbeats,
-- luv timers): -1 when there is none, 0 when work is ready now. Arm a host
-- timer with it after each `step` and after host code called into pogo.
-- @treturn integer
function M.timeout()
  return c_timeout()
end

--- Do all the ready work without blocking: read what arrived, run the
-- processes that made ready, write what they sent, and again while more
-- became ready at once (at most 64 loop passes; after 2 ms no new pass and
-- no process resumed, so a busy node cannot starve the host).
-- @treturn boolean true when more work is ready at once (call `step` again
--  after the host's own work); false when the host may wait for `fd()` or
--  `timeout()`
function M.step()
  return c_step()
end

--- Loop time in milliseconds.
-- @function now
M.now = now

--- Live processes on this node.
-- @function processes
M.processes = core.processes

--- Information about a local process, with Erlang's names: `status`
-- ("runnable", "running", "waiting", "sleeping"), `message_queue_len`,
-- `reductions` (one per time it was scheduled, plus about one per
-- microsecond of a slice long enough to be preempted), `links` (the linked
-- pids), `monitors` (the refs of the monitors it holds), `monitored_by`
-- (the pids monitoring it), `trap_exit`, `registered_name`. nil if the
-- process is not alive. (`state` and `messages` are older names of
-- `status` and `message_queue_len`.)
-- @function process_info
-- @param pid a local pid
-- @treturn table|nil
M.process_info = core.process_info

--- The node's memory, in bytes of Lua heap (as Erlang's `erlang:memory()`):
-- `total` (collectgarbage("count") in bytes), `limit` and `headroom` (with
-- `max_memory`: allocations made by processes fail past `limit`, the node's
-- own work may go `headroom` beyond it), `peak`, `refused` (allocations
-- failed by the limit), `malloc_failed` (allocations malloc itself failed),
-- `reserve` (false while the reserve kept for malloc failures is in use),
-- `trims` (times the memory the collector freed was given back to the
-- system, after the heap shrank by a quarter and 4 MiB), `collections`
-- (full collections the node ran because processes ended: 10,000 or more
-- were alive at once, a second or more ago, and three quarters of them have
-- ended; in Lua's generational mode their memory would otherwise wait for
-- the heap to double). With glibc 2.33 or
-- later, also `malloc_in_use` and `malloc_free`: the whole OS process's
-- malloc (every node in it, C and Lua alike), bytes handed out and bytes held
-- free in its arenas (mallinfo2; glibc's own: under a replacement
-- allocator, such as ASan's or valgrind's, they stay near zero); absent
-- elsewhere.
-- @function memory
-- @treturn table
M.memory = core.memory

--- This node's name (`"nonode@nohost"` until `pogo.start`).
function M.node()
  return core.node_name()
end

--- The name of the node a pid (or ref) belongs to.
function M.node_of(pid)
  return core.node_of(pid)
end

--- Receive a message.
-- `receive()` waits for the oldest message; `receive(timeout_ms)` gives up after
-- `timeout_ms` and returns nil; `receive(match [, timeout_ms])` takes the oldest
-- message for which `match(msg)` is true, leaving the others in order.
-- @tparam[opt] function match predicate for selective receive
-- @tparam[opt] integer timeout_ms
-- @return the message, or nil on timeout
function M.receive(match, timeout_ms)
  if match == nil and timeout_ms == nil then return c_receive() end -- the common case, first
  local timeout = timeout_ms
  if type(match) == "number" then match, timeout = nil, match end
  if timeout ~= nil and math.type(timeout) ~= "integer" then
    if timeout == math.huge then
      timeout = nil
    elseif type(timeout) == "number" and timeout >= 0 then
      timeout = math.tointeger(math.ceil(timeout)) -- fractions of a ms round up
    else
      error("pogo.receive: timeout must be a non-negative number of ms", 2)
    end
  elseif timeout ~= nil and timeout < 0 then
    error("pogo.receive: timeout must be a non-negative number of ms", 2)
  end
  if match == nil then return c_receive(timeout) end
  if type(match) ~= "function" then
    error("pogo.receive: match must be a function", 2)
  end
  -- (one that cannot wait takes nothing either, as receive() without a match)
  if timeout ~= 0 then check_block("pogo.receive", 2) end
  local deadline = timeout and now() + timeout
  local i = 1
  while true do
    while i <= mbox_len() do
      if match(mbox_peek(i)) then return mbox_take(i) end
      i = i + 1
    end
    local remaining
    if deadline then
      remaining = deadline - now()
      if remaining <= 0 then return nil end
      remaining = math.tointeger(remaining) or math.ceil(remaining)
    end
    -- (i - 1 messages looked at: one that came meanwhile ends the wait at once)
    if not c_wait(remaining, i - 1) then return nil end
  end
end

--- Remove a monitor; a DOWN for it already in the mailbox is removed too.
-- @param ref the monitor ref
-- @treturn boolean whether the monitor was still active
function M.demonitor(ref)
  local active = core.demonitor(ref)
  -- a monitor still active has delivered no DOWN: only a fired one needs the scan
  if not active then mbox_flush_down(ref) end
  return active
end

--- End the caller with `reason`, or send an exit signal to `pid`.
-- `exit(reason)` ends the calling process; `exit(pid, reason)` signals `pid`
-- ("kill" cannot be trapped and ends it with "killed").
function M.exit(pid_or_reason, reason)
  if pid_or_reason == nil then error("pogo.exit: reason expected", 2) end
  if reason == nil then
    if is_pid(pid_or_reason) then
      error("pogo.exit(pid) needs a reason: pogo.exit(pid, reason)", 2)
    end
    return core.exit_self(pid_or_reason)
  end
  return core.exit_signal(pid_or_reason, reason)
end

-- Resolve a call destination to something monitorable: a pid, a local name or
-- {name, node}; a via name gives its pid, or nil when nothing holds it. A
-- destination of no such kind raises at the caller of `what`.
local function call_target(dest, what)
  local kind = type(dest)
  if kind ~= "userdata" and kind ~= "string" and kind ~= "table" then
    error(what .. ': dest must be a pid, a registered name, {name, node} or {"via", module, name}', 3)
  end
  if kind == "table" and not is_pid(dest) then
    if is_via(dest) then return via_whereis(dest) end
    local name, node = dest[1], dest[2]
    if node == core.node_name() then return name end
    return dest
  end
  return dest
end

local function describe(dest)
  if type(dest) == "table" and not is_pid(dest) then
    if is_via(dest) then return string.format("{via, %s, %s}", tostring(dest[2]), tostring(dest[3])) end
    return string.format("{%s, %s}", tostring(dest[1]), tostring(dest[2]))
  end
  return tostring(dest)
end

--- Call a server: send `request` and wait for its reply.
-- Speaks `pogo.server`'s protocol. Raises an error starting with `timeout`,
-- `noproc`, `noconnection`, or `exit` (the server died while handling it).
-- @param dest pid, registered name, `{name, node}` or `{"via", module, name}`
-- @param request any value
-- @tparam[opt=5000] integer timeout_ms (or math.huge)
-- @return the reply
function M.call(dest, request, timeout_ms)
  local timeout = timeout_ms or 5000
  if type(timeout) ~= "number" or timeout ~= timeout or timeout < 0 then
    error("pogo.call: timeout_ms must be a non-negative number of ms (or math.huge)", 2)
  end
  local target = call_target(dest, "pogo.call")
  check_block("pogo.call", 2) -- before the request goes out
  if target == nil then error("noproc: nothing registered as " .. describe(dest), 2) end
  if type(target) == "string" and not core.whereis(target) then
    error("noproc: no process registered as '" .. target .. "'", 2)
  end
  -- messages queued before the call cannot answer it (its ref is new): the
  -- search for the reply starts after them, as Erlang's receive marker does
  local from = mbox_len() + 1
  local ref = core.monitor(target)
  send(target, { "$call", { self(), ref }, request })
  local deadline = timeout ~= math.huge and now() + timeout
  while true do
    -- mbox_find_ref looks at least up to the n-th message: a message that comes
    -- later (even while the caller is preempted) makes c_wait return at once
    local n = mbox_len()
    local i = mbox_find_ref(ref, from)
    if i then
      local m = mbox_take(i)
      if m[1] == ref then
        if not core.demonitor(ref) then mbox_flush_down(ref) end
        return m[2]
      end
      local reason = m[4]
      if reason == "noproc" then
        error("noproc: " .. describe(dest) .. " is not alive", 2)
      elseif reason == "noconnection" then
        error("noconnection: no connection to the node of " .. describe(dest), 2)
      end
      error("exit: " .. describe(dest) .. " exited during the call: " .. tostring(reason), 2)
    end
    from = n + 1
    local remaining
    if deadline then
      remaining = deadline - now()
      if remaining <= 0 or not c_wait(math.tointeger(remaining) or math.ceil(remaining), n) then
        if mbox_find_ref(ref, from) then goto continue end
        if not core.demonitor(ref) then mbox_flush_down(ref) end
        core.abandon_ref(ref) -- a late reply is dropped when it comes
        error("timeout: no reply from " .. describe(dest) .. " within " .. timeout .. " ms", 2)
      end
    else
      c_wait(nil, n)
    end
    ::continue::
  end
end

--- Send `msg` to a server without waiting (its handle_cast gets it).
-- Never fails for a missing destination.
-- @param dest pid, registered name, `{name, node}` or `{"via", module, name}`
-- @param msg any value
-- @treturn boolean true
function M.cast(dest, msg)
  local target = call_target(dest, "pogo.cast")
  if target == nil or type(target) == "string" and not core.whereis(target) then return true end
  send(target, { "$cast", msg })
  return true
end

--- Reply to a call received by a server (`from` as given to handle_call).
function M.reply(from, value)
  send(from[1], { from[2], value })
  return true
end

-- ---- the orderly stop: implemented in pogo.shutdown ----

local shutdown = require "pogo.shutdown"
shutdown.install(M)

--- Call `fn()` when the node stops (`pogo.stop`), once its supervision trees
-- have stopped and before its links close: for resources outside the trees,
-- such as the programs of `pogo.os_process` started outside a supervisor. The
-- hooks run in the order they were added, in the stopper process; an error
-- in one is logged (level error) and does not stop the others.
-- @function on_stop
-- @tparam function fn
-- @treturn function call it to remove `fn`
M.on_stop = shutdown.on_stop

--- Stop the node in order (`bin/pogo` does it on SIGTERM and SIGINT).
-- Every supervision tree terminates, the last started first: each supervisor
-- stops its children in reverse start order, each within its `shutdown`, and
-- their `terminate` runs; a distributed supervisor leaves the ring first, so
-- each child it stops starts at once on its new owner, and its requests are
-- taken over there. Then the `on_stop` hooks run, and the node closes its
-- links telling its peers `"shutdown"` (they see nodedown "shutdown" and do
-- not dial it again, unless it is their seed), and `pogo.run()` returns.
-- What still runs at the deadline is killed. See `pogo.shutdown`.
--
-- From the main chunk it drives the loop until the stop is done (and the
-- peers have closed their side of the links); from a process it waits too
-- (unless the stop ends that process); from a luv callback, such as a signal
-- handler, it returns at once and `pogo.run()` returns when the stop is done.
-- A stop asked while one runs joins it.
-- @function stop
-- @tparam[opt=15000] number timeout_ms how long the trees may take
--  (`math.huge`: no limit)
-- @tparam[opt="pogo.stop"] string why what asked for it: the stop logs
--  `<why>: stopping (timeout N ms)` at notice as it begins
-- @treturn ?boolean true when every tree stopped in time, false when what
--  was left was killed; nil from a luv callback
M.stop = shutdown.stop

-- ---- the node: implemented in pogo.dist, documented here where it is called ----

local dist = require "pogo.dist"
dist.install(M)

--- Start this node: listen, dial the seeds, answer rpc.
-- Options of the wrong type raise an error naming the option, at the
-- caller. Failures the user must fix (the port is taken, the cookie file
-- cannot be used, a bad seed address, the node is already started) raise
-- their reason without a Lua position, so a program can print it as it is.
-- @function start
-- @tparam[opt] table opts
--  `name` (default random), `host` (default "127.0.0.1"; the address others
--  dial), `port` (0 = ephemeral), `cookie` (default: env `POGO_COOKIE`, else
--  `~/.pogo.cookie`, created with a random value and mode 0600; refused when
--  group or others may access it, see `pogo.dist.read_cookie_file`),
--  `seeds` (list of "host:port" or node names), `heartbeat_ms` (1000),
--  `timeout_ms` (5000; more than `heartbeat_ms`), `max_frame` (largest frame accepted, hence the
--  largest message, 16 MiB), `max_memory` (bytes of Lua heap: past it an
--  allocation fails in the process that made it, which exits "out of
--  memory", and a message too big is dropped; default none),
--  `preempt_ms` (the time slice: a process running this long without
--  blocking is preempted, after at most twice that; 0.5; false turns
--  preemption off),
--  `backoff_min_ms` (50), `backoff_max_ms` (2000), `forget_ms` (300000),
--  `block` (node names refused from the start), `log` (false: no transport
--  log lines; otherwise they go to `pogo.log`, module "pogo.dist"),
--  `advertise` (`"host:port"` or `"host"`: the address in the
--  node's name and dialed by peers, when it differs from `host`, e.g. with
--  `host = "0.0.0.0"`), `tls` (`{cert =, key =, ca =}`, PEM file names:
--  mutual TLS 1.3 on every link; a missing file or a key that does not match
--  the certificate raises), `discovery` (`{dns = "name:port" |
--  "_service._tcp.name", interval_ms = 5000, nameserver = "ip:port"}`: every
--  A/AAAA (or SRV) record is a seed, read again every interval), `http`
--  (`"host:port"`: serve the cluster's live web page, `/api/*` and
--  `/metrics` there, see `pogo.dashboard`; it listens on that address only).
--  An option not in this list raises (`unknown option: <name>`).
-- @treturn string the node's name, `name@host:port` with the real port (the
--  advertised address when `advertise` is given)
M.start = dist.start

--- Connect to a node now (the mesh then connects to its peers too).
-- Blocks the caller until the link is up or failed.
-- @function connect
-- @tparam string addr "host:port" or a node name
-- @tparam[opt] integer timeout_ms (default timeout_ms + 1000)
-- @return the node's name, or nil and the reason
M.connect = dist.connect

--- Close the link to `node` (both sides see nodedown "disconnect"); neither
-- redials the other, even when gossip names it, but `connect` (from either
-- side) brings it back (see `block`).
-- @function disconnect
-- @tparam string node
-- @treturn boolean whether it was connected
M.disconnect = dist.disconnect

--- Keep `node` away (`flag` true, the default): disconnect it, never dial it,
-- refuse its dials. `block(node, false)` lifts that and dials it.
-- @function block
-- @tparam string node
-- @tparam[opt=true] boolean flag
M.block = dist.block

--- Names of the connected nodes.
-- @function nodes
-- @treturn {string,...}
M.nodes = dist.nodes

--- Subscribe the caller (`flag` true, the default) to `{"nodeup", node}` and
-- `{"nodedown", node, reason}`, or unsubscribe it (`false`). Before
-- `pogo.start` the subscription waits for the node to start.
-- @function monitor_nodes
-- @tparam[opt=true] boolean flag
M.monitor_nodes = dist.monitor_nodes

--- Call `require(module)[fn](table.unpack(args))` in a fresh process on `node`.
-- That process is killed when `timeout_ms` passes or the caller exits, so a
-- caller that gave up leaves nothing running there.
-- @function rpc
-- @tparam string node
-- @tparam string module a `require` name
-- @tparam string fn
-- @tparam[opt] table args an array (`args.n` honoured for trailing nils)
-- @tparam[opt=5000] integer timeout_ms (or math.huge)
-- @return true and the results, or false and the error: the value raised
--  remotely, or a message starting with `undef:` (no such module or
--  function), `timeout:`, `noconnection:` or `noproc:` (no rpc server).
M.rpc = dist.rpc

--- Close every link, telling peers "shutdown" (`pogo.stop` does it). From
-- the main chunk it then waits until the peers have closed their side.
-- @function dist_stop
-- @tparam[opt=1000] integer drain_ms the longest wait
M.dist_stop = dist.dist_stop

--- Transport state for tools and tests (see `pogo.dist.dist_info`).
-- @function dist_info
M.dist_info = dist.dist_info

return M
