--- The distributed supervisor: Pogo's algorithm over `pogo.pg` and `pogo.ring`.
--
-- Each node runs `start_link{name =, scope =, ...}`; the supervisors of one scope
-- form one distributed supervisor. `start_child` on any node is a request: the
-- spec is replicated to every node of the scope and the node that the ring
-- assigns to the child id starts it. Children move when nodes come and go, and
-- `which_children(sup, "global")` shows every child from any node.
--
-- Cluster state lives in pg groups of the scope:
--
-- * `"sup"`: the supervisor process of every node (the ring's nodes);
-- * `{"spec", uid, spec}`: one request (`uid` names it), held by the keeper (an
--   idle process that outlives a crash of the supervisor process) of the node
--   that made it; every node learns it from pg. When no node holds it any more
--   (that node died, or its supervisor was stopped) the child's owner takes it
--   over, so a spec survives as long as any node of the scope does;
-- * `{"child", id}`: the pid running the child;
-- * `{"term", uid}`: a termination marker, held by the keeper of the node that
--   asked, until no node holds the spec.
--
-- Placement reacts to pg changes, exits and node up/down at once;
-- `sync_interval` is only a periodic repair pass. A node that sees a node connect
-- starts nothing until that node's supervisor shows up in `"sup"` and has told
-- it the nodes of its ring (or `settle_ms` passes, or that node turns out to
-- run no supervisor of the scope); a supervisor that starts while its node's
-- seeds are still being dialed waits for them the same way. So a joining node
-- never starts a child that an old owner still runs; the old owner stops it
-- first and the new owner starts it on the pg leave. When a node dies its
-- children start on their new owners at once.
-- @module pogo.dynamic_supervisor
local pogo = require "pogo"
local dist = require "pogo.dist"
local pg = require "pogo.pg"
local ring_mod = require "pogo.ring"
local child_spec = require "pogo.child_spec"
local proc_lib = require "pogo.proc_lib"

local core = pogo.core
local encode = core.encode

local M = {}

local LISTENER_EVENTS = { "node_up", "node_down", "child_started", "child_stopped", "child_moved" }

local function now() return pogo.now() end

local function log(st, level, fmt, ...)
  local msg = string.format(fmt, ...)
  if st.opts.log then
    pcall(st.opts.log, level, msg)
  elseif level ~= "debug" then
    io.stderr:write(string.format("[pogo.dynamic_supervisor %s %s] %s: %s\n",
      tostring(st.name), pogo.node(), level, msg))
  end
end

local function notify(st, event, ...)
  for _, l in ipairs(st.listeners) do
    local f = type(l) == "table" and l[event]
    if f then
      local ok, err = pcall(f, ...)
      if not ok then log(st, "error", "listener %s raised: %s", event, tostring(err)) end
    end
  end
end

local function id_key(id) return encode(id) end

-- ---- the supervisor process ----

local Sup = {}
Sup.__index = Sup

function Sup:mark(key) if key then self.dirty[key] = true end end

function Sup:register_spec(group)
  local uid, spec = group[2], group[3]
  if self.specs[uid] then return self.specs[uid], false end
  local key = id_key(spec.id)
  local s = { uid = uid, id = spec.id, key = key, spec = spec, group = group, joined = false }
  self.specs[uid] = s
  local set = self.by_key[key]
  if not set then set = {}; self.by_key[key] = set end
  set[uid] = true
  return s, true
end

function Sup:forget_spec(uid)
  local s = self.specs[uid]
  if not s then return end
  self.specs[uid] = nil
  local set = self.by_key[s.key]
  if set then
    set[uid] = nil
    if next(set) == nil then self.by_key[s.key] = nil end
  end
end

local function keeper_name(scope) return "$dsup_keeper:" .. scope end

-- A node connected: wait for its supervisor to show up in the ring (or for
-- `settle_ms`) before starting anything, unless it runs none of this scope.
-- Monitoring its keeper by name answers that at once: a node without one
-- (an observer, a node of other scopes) gives "noproc" in one round trip.
function Sup:await_node(node)
  self.pending[node] = now() + self.settle
  self:drop_probe(node)
  local ref = pogo.monitor({ keeper_name(self.scope), node })
  self.probe[node], self.probe_node[ref] = ref, node
end

function Sup:drop_probe(node)
  local ref = self.probe[node]
  if ref then
    pogo.demonitor(ref)
    self.probe[node], self.probe_node[ref] = nil, nil
  end
end

-- Is `addr` ("host:port" or a node name) the address of `node`?
local function is_addr_of(node, addr)
  return node == addr or node:sub(-#addr - 1) == "@" .. addr
end

-- Dial `addr` (a seed not connected yet, or a node in a peer's ring that we do
-- not know) in a helper process, waiting for it meanwhile (up to `settle_ms`):
-- until we are connected, we cannot know which children it runs.
function Sup:await_connect(addr)
  local token = "$connect " .. addr
  if self.pending[token] then return end
  self.pending[token] = now() + self.settle
  local sup, timeout = pogo.self(), self.settle
  pogo.spawn(function()
    local ok, node = pcall(pogo.connect, addr, timeout)
    pogo.send(sup, { "$dsup_connected", token, ok and node or nil })
  end)
end

-- A dial of `await_connect` ended: wait for the node it reached instead.
function Sup:connected(token, node)
  if node and node ~= self.me and not self.ring_nodes[node] and self.pending[node] == nil then
    self:await_node(node)
  end
  self:clear_pending(token)
end

-- A connecting node's supervisor showed up; its reply to "$dsup_ring" names
-- the nodes of its ring, and those we do not have are waited for too (a node
-- that joins through one seed learns the others by gossip, a little later).
function Sup:peer_ring(node, nodes)
  if self.pending[node] == nil then return end
  local connected = {}
  for _, n in ipairs(pogo.nodes()) do connected[n] = true end
  for _, n in ipairs(nodes) do
    if n ~= self.me and not self.ring_nodes[n] and self.pending[n] == nil then
      if connected[n] then self:await_node(n) else self:await_connect(n) end
    end
  end
  self:clear_pending(node)
end

-- The DOWN of a keeper probe: "noproc" means that node runs no supervisor of
-- this scope, so nothing there is to be waited for.
function Sup:probe_down(ref, reason)
  local node = self.probe_node[ref]
  self.probe_node[ref] = nil
  if self.probe[node] ~= ref then return end
  self.probe[node] = nil
  if reason == "noproc" then self:clear_pending(node) end
end

-- A connecting node showed up in the ring, went away, or took too long: when
-- none is pending any more, the keys that waited for that are looked at again.
function Sup:clear_pending(node)
  self:drop_probe(node)
  if self.pending[node] == nil then return end
  self.pending[node] = nil
  if next(self.pending) == nil then
    for key in pairs(self.unsettled) do self.dirty[key] = true end
  end
end

function Sup:update_ring()
  local members = pg.get_members(self.scope, "sup")
  local nodes = {}
  local changed = false
  for _, pid in ipairs(members) do nodes[pogo.node_of(pid)] = pid end
  for node in pairs(self.ring_nodes) do
    if not nodes[node] then
      changed = true
      self.ring:remove(node)
      self:clear_pending(node) -- its supervisor went: nothing to wait for there
      if node ~= self.me then notify(self, "node_down", node, self.down_reason[node] or "left") end
    end
  end
  for node in pairs(nodes) do
    if not self.ring_nodes[node] then
      changed = true
      self.ring:add(node)
      if self.pending[node] and node ~= self.me then
        pogo.send(nodes[node], { "$dsup_ring", pogo.self() }) -- answered in peer_ring
      else
        self:clear_pending(node)
      end
      if node ~= self.me then notify(self, "node_up", node) end
    end
  end
  self.ring_nodes = nodes
  if changed then self:owners_changed() end
end

-- The ring changed: reconcile the keys whose owner is not the one they had.
function Sup:owners_changed()
  local owner = self.owner
  for key, uids in pairs(self.by_key) do
    local s = self.specs[next(uids)]
    local o = self.ring:key_to_node(s.id)
    if owner[key] ~= o then
      owner[key] = o
      self.dirty[key] = true
    end
  end
  for key in pairs(self.children) do self.dirty[key] = true end
end

-- A pg notification {"pg", ref, "join" | "leave", group, pids}.
function Sup:on_pg(kind, group, pids)
  if group == "sup" then
    self:update_ring()
    return
  end
  if type(group) ~= "table" then return end
  local tag = group[1]
  if tag == "spec" then
    local uid = group[2]
    if kind == "join" then
      local s, new = self:register_spec(group)
      -- another node joining a request we know changes nothing here
      if new or not s.joined then self:mark(s.key) end
      -- a node back from a partition may bring a terminated request back
      if self.dead[uid] and not self.my_terms[uid] and not self.terms[uid] then self:mark_term(uid) end
    else
      -- a request that no node holds any more: forgotten if terminated, else
      -- its owner takes it over (see reconcile)
      local s = self.specs[uid]
      if s and #pg.get_members(self.scope, group) == 0 then
        self:mark(s.key)
        if self.dead[uid] or self.terms[uid] then self:forget_spec(uid) end
      end
    end
  elseif tag == "child" then
    local key = id_key(group[2])
    if kind == "join" then
      for _, pid in ipairs(pids or {}) do self.last_node[key] = pogo.node_of(pid) end
    end
    -- only the node running it and its owner care
    if self.children[key] or self.ring:key_to_node(group[2]) == self.me then self:mark(key) end
  elseif tag == "term" then
    local uid = group[2]
    if kind == "join" then
      self.terms[uid] = true
      self.dead[uid] = now()
    elseif #pg.get_members(self.scope, group) == 0 then
      self.terms[uid] = nil
    end
    local s = self.specs[uid]
    if s then self:mark(s.key) end
  end
end

function Sup:keeper_holds(group)
  for _, pid in ipairs(pg.get_local_members(self.scope, group)) do
    if pid == self.keeper then return true end
  end
  return false
end

-- Read every group of the scope (start-up and the periodic repair pass).
function Sup:rescan()
  local seen_specs, seen_terms = {}, {}
  for _, group in ipairs(pg.which_groups(self.scope)) do
    if type(group) == "table" then
      if group[1] == "spec" then
        local s, new = self:register_spec(group)
        if new then self:mark(s.key) end
        if not s.joined and self:keeper_holds(group) then s.joined = true end
        seen_specs[s.uid] = true
      elseif group[1] == "term" then
        self.terms[group[2]] = true
        self.dead[group[2]] = self.dead[group[2]] or now()
        if self:keeper_holds(group) then self.my_terms[group[2]] = group end
        seen_terms[group[2]] = true
      end
    end
  end
  for uid, s in pairs(self.specs) do
    if not seen_specs[uid] and not s.joined then self:forget_spec(uid) end
  end
  for uid in pairs(self.terms) do
    if not seen_terms[uid] then self.terms[uid] = nil end
  end
  self:update_ring()
end

function Sup:start_local(key, s)
  local rec = self.children[key]
  if not rec then
    rec = { id = s.id, key = key, restarts = {}, backoff = 0 }
    self.children[key] = rec
  end
  rec.uid, rec.spec = s.uid, s.spec
  rec.status = "starting"
  local pid, err = child_spec.start(s.spec)
  if not pid or not pogo.is_pid(pid) then
    err = err or "start did not return a pid"
    rec.pid, rec.status, rec.error = nil, "restarting", err
    rec.backoff = math.min(math.max(rec.backoff * 2, self.opts.min_backoff_ms or 50), self.opts.max_backoff_ms or 5000)
    rec.retry_at = now() + rec.backoff
    self.retry[key] = rec
    log(self, "warning", "child %s failed to start (retry in %d ms): %s", tostring(s.id), rec.backoff, tostring(err))
    return
  end
  pogo.link(pid)
  rec.pid, rec.status, rec.error, rec.retry_at = pid, "running", nil, nil
  self.retry[key] = nil
  self.by_pid[pid] = rec
  pg.join(self.scope, { "child", s.id }, pid)
  local from = self.last_node[key]
  self.last_node[key] = self.me
  notify(self, "child_started", s.id, pid)
  if from and from ~= self.me then notify(self, "child_moved", s.id, from, self.me) end
end

function Sup:stop_local(rec)
  if rec.status == "stopping" then return end
  if not pogo.is_pid(rec.pid) then
    self.children[rec.key] = nil
    self.retry[rec.key] = nil
    return
  end
  rec.status = "stopping"
  local s = rec.spec.shutdown
  if s == "brutal_kill" then
    pogo.exit(rec.pid, "kill")
  else
    pogo.exit(rec.pid, "shutdown")
    if s ~= "infinity" then self.stopping[rec.pid] = now() + s end
  end
end

-- Whether this node should run the child of key, given who runs it elsewhere.
function Sup:reconcile(key)
  self.unsettled[key] = nil
  local uids = self.by_key[key]
  local active
  if uids then
    for uid in pairs(uids) do
      if not self.terms[uid] and not self.dead[uid] and (active == nil or uid < active) then active = uid end
    end
    for uid in pairs(uids) do
      local s = self.specs[uid]
      if uid ~= active then
        if s.joined then
          pg.leave(self.scope, s.group, self.keeper)
          s.joined = false
        end
        -- a request that lost to another for the same id, or was terminated,
        -- and that no node holds any more, is forgotten
        if #pg.get_members(self.scope, s.group) == 0 then self:forget_spec(uid) end
      end
    end
  end
  -- termination markers of ours that every node has acted on
  for uid, group in pairs(self.my_terms) do
    local s = self.specs[uid]
    if not s or (s.key == key and #pg.get_members(self.scope, s.group) == 0) then
      pg.leave(self.scope, group, self.keeper)
      self.my_terms[uid] = nil
      if s then self:forget_spec(uid) end
    end
  end
  local rec = self.children[key]
  if not active then
    if rec then self:stop_local(rec) end
    return
  end
  local s = self.specs[active]
  local owner = self.ring:key_to_node(s.id)
  self.owner[key] = owner
  -- The requester holds a request; when no node holds it any more (the
  -- requester's node died, or its supervisor restarted), its owner takes it.
  if not s.joined and owner == self.me and #pg.get_members(self.scope, s.group) == 0 then
    pg.join(self.scope, s.group, self.keeper)
    s.joined = true
  end
  local elsewhere
  for _, pid in ipairs(pg.get_members(self.scope, { "child", s.id })) do
    local node = pogo.node_of(pid)
    if node ~= self.me and (elsewhere == nil or node < elsewhere) then elsewhere = node end
  end
  if rec and rec.status == "stopping" then return end
  if rec and rec.uid ~= active then
    self:stop_local(rec)
    return
  end
  if rec and pogo.is_pid(rec.pid) then
    if owner ~= self.me and self.redistribute == "active" then
      self:stop_local(rec)
      self.unsettled[key] = true
    elseif elsewhere then
      -- duplicates (a healed netsplit): the owner's copy wins, else the lowest node's
      local keep_mine = owner == self.me or (owner ~= elsewhere and self.me < elsewhere)
      if not keep_mine then self:stop_local(rec) end
    end
    return
  end
  if rec and rec.status == "restarting" then return end
  if owner == self.me then
    if not elsewhere and next(self.pending) == nil then
      self:start_local(key, s)
    else
      self.unsettled[key] = true -- waiting for the old owner or a connecting node
    end
  end
end

-- The periodic repair pass: the keys still waiting for something, plus a
-- bounded slice of all keys (a full sweep every `sweep_passes` passes, when the
-- group list is read again). Its cost does not grow with the number of groups.
function Sup:repair_pass()
  -- settle what the last messages changed first: a rescan must not forget a
  -- request whose holder just went away before its owner takes it over
  self:reconcile_dirty()
  for key in pairs(self.unsettled) do self.dirty[key] = true end
  if not self.sweep or self.sweep_i > #self.sweep then
    self.passes = (self.passes or 0) + 1
    if self.passes % self.sweep_passes == 0 then self:rescan() end
    local keys = {}
    for key in pairs(self.by_key) do keys[#keys + 1] = key end
    self.sweep, self.sweep_i = keys, 1
  end
  local per = math.max(1, math.ceil(#self.sweep / self.sweep_passes))
  for i = self.sweep_i, math.min(#self.sweep, self.sweep_i + per - 1) do self.dirty[self.sweep[i]] = true end
  self.sweep_i = self.sweep_i + per
end

function Sup:reconcile_dirty()
  if self.all_dirty then
    self.all_dirty = false
    self.dirty = {}
    for key in pairs(self.by_key) do self:reconcile(key) end
    for key in pairs(self.children) do
      if not self.by_key[key] then self:reconcile(key) end
    end
    return
  end
  while true do
    local key = next(self.dirty)
    if key == nil then break end
    self.dirty[key] = nil
    self:reconcile(key)
  end
end

-- A local child exited.
function Sup:child_exit(rec, reason)
  self.by_pid[rec.pid] = nil
  self.stopping[rec.pid] = nil
  rec.pid = nil
  notify(self, "child_stopped", rec.id, reason)
  if rec.status == "stopping" then
    self.children[rec.key] = nil
    self.retry[rec.key] = nil
    self:mark(rec.key)
    return
  end
  local restart = rec.spec.restart
  if restart == "temporary" or (restart == "transient" and (reason == "normal" or reason == "shutdown")) then
    self.children[rec.key] = nil
    self.retry[rec.key] = nil
    self:terminate(rec.id)
    return
  end
  -- restart intensity: within it restart at once, beyond it back off
  local t = now()
  local keep = {}
  for _, r in ipairs(rec.restarts) do
    if t - r <= self.period then keep[#keep + 1] = r end
  end
  keep[#keep + 1] = t
  rec.restarts = keep
  self.retry[rec.key] = rec
  if #keep <= self.intensity then
    rec.status = "restarting"
    rec.retry_at = t
    rec.backoff = 0
  else
    rec.status = "restarting"
    rec.backoff = math.min(math.max(rec.backoff * 2, self.opts.min_backoff_ms or 50), self.opts.max_backoff_ms or 5000)
    rec.retry_at = t + rec.backoff
    rec.error = reason
    log(self, "warning", "child %s exceeded %d restarts in %d ms; retrying in %d ms",
      tostring(rec.id), self.intensity, self.period, rec.backoff)
  end
end

function Sup:retry_due()
  local t = now()
  for key, rec in pairs(self.retry) do
    if rec.status ~= "restarting" or self.children[key] ~= rec then
      self.retry[key] = nil
    elseif rec.retry_at <= t then
      local s = self.specs[rec.uid]
      local active_ok = s and not self.terms[rec.uid] and not self.dead[rec.uid]
      if active_ok and self.ring:key_to_node(s.id) == self.me or (active_ok and self.redistribute == "on_failure") then
        self:start_local(key, s)
      else
        self.children[key] = nil
        self.retry[key] = nil
        self:mark(key)
      end
    end
  end
  for pid, deadline in pairs(self.stopping) do
    if deadline <= t then
      self.stopping[pid] = nil
      pogo.exit(pid, "kill")
    end
  end
  for node, deadline in pairs(self.pending) do
    if deadline <= t then self:clear_pending(node) end
  end
end

function Sup:next_timeout()
  local t = now()
  local soonest = self.next_sync
  for _, rec in pairs(self.retry) do
    if rec.retry_at < soonest then soonest = rec.retry_at end
  end
  for _, d in pairs(self.stopping) do if d < soonest then soonest = d end end
  for _, d in pairs(self.pending) do if d < soonest then soonest = d end end
  local ms = soonest - t
  if ms < 0 then ms = 0 end
  return math.tointeger(ms) or math.ceil(ms)
end

-- Request a child: join a new spec group (unless the id is already requested).
function Sup:request(spec)
  local key = id_key(spec.id)
  local uids = self.by_key[key]
  if uids then
    local bytes = encode(spec)
    for uid in pairs(uids) do
      if not self.terms[uid] and not self.dead[uid] then
        if encode(self.specs[uid].spec) == bytes then return true end
        return nil, "already started: " .. tostring(spec.id)
      end
    end
  end
  self.seq = self.seq + 1
  local uid = string.format("%s/%d/%d", self.me, core.creation(), self.seq)
  local group = { "spec", uid, spec }
  local s = self:register_spec(group)
  pg.join(self.scope, group, self.keeper)
  s.joined = true
  self:mark(key)
  return true
end

-- Join the termination marker of request uid (this node then removes it once
-- no node holds the spec any more).
function Sup:mark_term(uid)
  local group = { "term", uid }
  self.terms[uid] = true
  self.dead[uid] = now()
  self.my_terms[uid] = group
  pg.join(self.scope, group, self.keeper)
end

-- Terminate every request for id, cluster-wide.
function Sup:terminate(id)
  local key = id_key(id)
  local uids = self.by_key[key]
  local found = false
  if uids then
    for uid in pairs(uids) do
      if not self.terms[uid] and not self.dead[uid] then
        found = true
        self:mark_term(uid)
      end
    end
  end
  self:mark(key)
  return found
end

local function entry(id, pid, spec, extra)
  local e = { id, pid, spec.type, spec.modules, id = id, pid = pid, type = spec.type, modules = spec.modules }
  if extra then for k, v in pairs(extra) do e[k] = v end end
  return e
end

-- Entries sorted by the canonical encoding of their ids (then node), so every
-- node lists the same children in the same order.
function Sup:which_children(mode)
  local out, keys = {}, {}
  local function add(key, e)
    out[#out + 1] = e
    keys[e] = key .. "\0" .. (e.node or "")
  end
  if mode == "global" then
    for key, uids in pairs(self.by_key) do
      for uid in pairs(uids) do
        local s = self.specs[uid]
        if not self.terms[uid] and not self.dead[uid] then
          for _, pid in ipairs(pg.get_members(self.scope, { "child", s.id })) do
            add(key, entry(s.id, pid, s.spec, { node = pogo.node_of(pid) }))
          end
          break
        end
      end
    end
  else
    for key, rec in pairs(self.children) do
      local pid = rec.pid
      if pid == nil then pid = rec.status == "restarting" and "restarting" or "undefined" end
      add(key, entry(rec.id, pid, rec.spec, { status = rec.status, error = rec.error }))
    end
  end
  table.sort(out, function(x, y) return keys[x] < keys[y] end)
  return out
end

function Sup:count_children(mode)
  local n = { specs = 0, active = 0, supervisors = 0, workers = 0 }
  if mode == "global" then
    for _, uids in pairs(self.by_key) do
      for uid in pairs(uids) do
        local s = self.specs[uid]
        if not self.terms[uid] and not self.dead[uid] then
          n.specs = n.specs + 1
          n.active = n.active + #pg.get_members(self.scope, { "child", s.id })
          if s.spec.type == "supervisor" then n.supervisors = n.supervisors + 1 else n.workers = n.workers + 1 end
          break
        end
      end
    end
  else
    for _, rec in pairs(self.children) do
      n.specs = n.specs + 1
      if pogo.is_pid(rec.pid) then n.active = n.active + 1 end
      if rec.spec.type == "supervisor" then n.supervisors = n.supervisors + 1 else n.workers = n.workers + 1 end
    end
  end
  return n
end

function Sup:whereis(id)
  local members = pg.get_members(self.scope, { "child", id })
  if #members <= 1 then return members[1] end
  local owner = self.ring:key_to_node(id)
  for _, pid in ipairs(members) do
    if pogo.node_of(pid) == owner then return pid end
  end
  return members[1]
end

function Sup:handle_call(req)
  local op = req[1]
  if op == "start_child" then return { self:request(req[2]) }
  elseif op == "terminate_child" then
    if self:terminate(req[2]) then return { true } end
    return { nil, "not found" }
  elseif op == "which_children" then return { self:which_children(req[2]) }
  elseif op == "count_children" then return { self:count_children(req[2]) }
  elseif op == "whereis" then return { self:whereis(req[2]) }
  elseif op == "node_for" then return { self.ring:key_to_node(req[2]) }
  elseif op == "nodes" then return { self.ring:nodes() }
  elseif op == "scope" then return { self.scope }
  elseif op == "specs" then
    local out = {}
    for _, uids in pairs(self.by_key) do
      for uid in pairs(uids) do
        if not self.terms[uid] and not self.dead[uid] then out[#out + 1] = self.specs[uid].spec; break end
      end
    end
    return { out }
  end
  return { nil, "unknown request" }
end

function Sup:shutdown(reason)
  for _, rec in pairs(self.children) do
    if pogo.is_pid(rec.pid) then child_spec.shutdown(rec.pid, rec.spec.shutdown) end
  end
  -- a deliberate stop gives this node's requests up: their owners take them over
  pogo.demonitor(self.keeper_ref)
  pogo.exit(self.keeper, "kill")
  pogo.exit(reason)
end

-- The keeper: an idle process of this node and scope that holds this node's
-- requests and termination markers in pg. It runs no user code, so it outlives
-- a crash of the supervisor process, whose restart adopts it (rescan): the
-- requests survive as long as the node does.
function Sup:adopt_keeper()
  local name = keeper_name(self.scope)
  local keeper = pogo.whereis(name)
  if not keeper then
    keeper = pogo.spawn(function()
      while pogo.receive() ~= "stop" do end
    end)
    pogo.register(name, keeper)
  end
  self.keeper = keeper
  self.keeper_ref = pogo.monitor(keeper)
end

-- The keeper died (killed by hand): a new one holds what the old one held.
function Sup:keeper_down()
  self:adopt_keeper()
  for _, s in pairs(self.specs) do
    if s.joined then pg.join(self.scope, s.group, self.keeper) end
  end
  for _, group in pairs(self.my_terms) do pg.join(self.scope, group, self.keeper) end
end

local function body(ack, parent, opts, specs)
  pogo.trap_exit(true)
  local st = setmetatable({
    name = opts.name, scope = opts.scope or opts.name, opts = opts, me = pogo.node(),
    listeners = opts.listeners or {}, redistribute = opts.redistribute or "active",
    intensity = opts.intensity or 3, period = opts.period_ms or 5000,
    sync_interval = opts.sync_interval or 5000, settle = opts.settle_ms or 1000,
    ring = ring_mod.new(opts.vnodes and { vnodes = opts.vnodes } or nil), ring_nodes = {},
    specs = {}, by_key = {}, terms = {}, my_terms = {}, children = {}, by_pid = {},
    stopping = {}, retry = {}, dirty = {}, all_dirty = true, owner = {}, unsettled = {},
    sweep_passes = opts.sweep_passes or 12, pending = {}, probe = {}, probe_node = {}, last_node = {},
    down_reason = {}, seq = 0, dead = {}, tombstone_ms = opts.tombstone_ms or 600000,
  }, Sup)
  if opts.name ~= nil and not pcall(pogo.register, opts.name, pogo.self()) then
    return ack(false, "already started: " .. tostring(pogo.whereis(opts.name)))
  end
  pg.start(st.scope)
  st:adopt_keeper()
  local pg_ref = pg.monitor_scope(st.scope)
  pogo.monitor_nodes(true)
  local connected = pogo.nodes()
  for _, node in ipairs(connected) do st:await_node(node) end
  for _, addr in ipairs(dist.seeds()) do
    local known = is_addr_of(st.me, addr)
    for _, node in ipairs(connected) do known = known or is_addr_of(node, addr) end
    if not known then st:await_connect(addr) end
  end
  pg.join(st.scope, "sup", pogo.self())
  st:rescan()
  for _, spec in ipairs(specs) do
    local ok, err = st:request(spec)
    if not ok then log(st, "debug", "initial child %s: %s", tostring(spec.id), tostring(err)) end
  end
  st.next_sync = now() + st.sync_interval
  ack(true)
  while true do
    st:reconcile_dirty()
    local msg = pogo.receive(st:next_timeout())
    -- drain everything queued before acting on it (one consistent view)
    while msg ~= nil do
      local tag = type(msg) == "table" and msg[1]
      if tag == "pg" and msg[2] == pg_ref then
        st:on_pg(msg[3], msg[4], msg[5])
      elseif tag == "EXIT" then
        local pid, reason = msg[2], msg[3]
        if pid == parent then st:shutdown(reason) end
        local rec = st.by_pid[pid]
        if rec then st:child_exit(rec, reason) end
      elseif tag == "$call" then
        -- a bad request (say, an id that cannot be encoded) is answered, not fatal
        local ok, r = pcall(st.handle_call, st, msg[3])
        pogo.reply(msg[2], ok and r or { nil, "bad request: " .. tostring(r) })
      elseif tag == "DOWN" and msg[2] == st.keeper_ref then
        st:keeper_down()
      elseif tag == "DOWN" and st.probe_node[msg[2]] then
        st:probe_down(msg[2], msg[4])
      elseif tag == "$dsup_ring" then
        local list = {}
        for node in pairs(st.ring_nodes) do list[#list + 1] = node end
        pogo.send(msg[2], { "$dsup_ring_reply", st.me, list })
      elseif tag == "$dsup_ring_reply" then
        st:peer_ring(msg[2], msg[3])
      elseif tag == "$dsup_connected" then
        st:connected(msg[2], msg[3])
      elseif tag == "nodeup" then
        local node = msg[2]
        if not st.ring_nodes[node] then st:await_node(node) end
      elseif tag == "nodedown" then
        st:clear_pending(msg[2])
        st.down_reason[msg[2]] = msg[3]
      end
      msg = pogo.receive(0)
    end
    st:retry_due()
    if now() >= st.next_sync then
      st.next_sync = now() + st.sync_interval
      st:repair_pass()
      for uid, t in pairs(st.dead) do
        if now() - t > st.tombstone_ms and not st.terms[uid] then st.dead[uid] = nil end
      end
    end
  end
end

--- Start this node's part of a distributed supervisor, linked to the caller.
-- @tparam table opts `name` (registered locally, and the default scope),
--   `scope`, `sync_interval` (5000 ms, a repair pass), `children` (specs
--   requested at start), `redistribute` ("active" or "on_failure"),
--   `listeners` (tables with optional `node_up`, `node_down`, `child_started`,
--   `child_stopped`, `child_moved`), `intensity`/`period_ms` (restarts of one
--   child before backing off), `max_backoff_ms`, `settle_ms` (1000: how long a
--   connecting node may take to show its supervisor), `log` (function(level, msg)).
-- @return pid, or nil and the reason
function M.start_link(opts)
  if type(opts) ~= "table" then return nil, "options table expected" end
  if opts.name == nil and opts.scope == nil then return nil, "name or scope required" end
  if opts.scope ~= nil and type(opts.scope) ~= "string" then return nil, "scope must be a string" end
  if opts.name ~= nil and type(opts.name) ~= "string" then return nil, "name must be a string" end
  if opts.redistribute ~= nil and opts.redistribute ~= "active" and opts.redistribute ~= "on_failure" then
    return nil, "redistribute must be \"active\" or \"on_failure\""
  end
  for _, l in ipairs(opts.listeners or {}) do
    if type(l) ~= "table" then return nil, "listeners must be tables of functions" end
    for _, ev in ipairs(LISTENER_EVENTS) do
      if l[ev] ~= nil and type(l[ev]) ~= "function" then return nil, "listener " .. ev .. " must be a function" end
    end
  end
  local specs = {}
  for i, c in ipairs(opts.children or {}) do
    local spec, err = child_spec.normalize(c)
    if not spec then return nil, err end
    local ok, e = pcall(encode, spec)
    if not ok then return nil, "invalid child spec: " .. tostring(e) end
    specs[i] = spec
  end
  return proc_lib.start(true, nil, body, opts, specs)
end

local function call(sup, req, timeout)
  local r = pogo.call(sup, req, timeout or 30000)
  return r[1], r[2]
end

--- Request a child anywhere in the cluster: it starts on the node the ring
-- assigns to its id. Bad specs give `nil, "invalid child spec: <why>"` and are
-- never replicated.
-- @param sup the local supervisor (name or pid)
-- @param spec a child spec or shorthand
-- @return true, or nil and the reason
function M.start_child(sup, spec)
  local s, err = child_spec.normalize(spec)
  if not s then return nil, err end
  local ok, e = pcall(encode, s)
  if not ok then return nil, "invalid child spec: " .. tostring(e):gsub("^value", "spec") end
  return call(sup, { "start_child", s })
end

--- Terminate a child wherever it runs, from any node, and forget its spec.
-- Waits (up to `timeout_ms`, default 5000) until no copy runs any more.
-- @return true, or nil and "not found"
function M.terminate_child(sup, id, timeout)
  local ok, err = call(sup, { "terminate_child", id })
  if not ok then return nil, err end
  local deadline = now() + (timeout or 5000)
  local scope = call(sup, { "scope" })
  local group = { "child", id }
  local ref = pg.monitor(scope, group)
  while #pg.get_members(scope, group) > 0 and now() < deadline do
    pogo.receive(function(m) return type(m) == "table" and m[1] == "pg" and m[2] == ref end,
      math.max(1, deadline - now()))
  end
  pg.demonitor(ref)
  while pogo.receive(function(m) return type(m) == "table" and m[1] == "pg" and m[2] == ref end, 0) do end
  return true
end

--- Children: `"local"` (default) lists what this node supervises,
-- `"global"` every running child in the cluster (with its pid and `node`).
-- Entries are `{id, pid | "restarting" | "undefined", type, modules}` with the
-- same fields by name, sorted by id; local entries also carry `status` and
-- `error`, global ones `node`.
function M.which_children(sup, mode) return (call(sup, { "which_children", mode or "local" })) end

--- Counts `{specs =, active =, supervisors =, workers =}`, `"local"` or `"global"`.
function M.count_children(sup, mode) return (call(sup, { "count_children", mode or "local" })) end

--- Every child spec requested in the cluster and not terminated (running or
-- not), as this node knows them.
function M.specs(sup) return (call(sup, { "specs" })) end

--- The pid running child `id` anywhere in the cluster, or nil.
function M.whereis(sup, id) return (call(sup, { "whereis", id })) end

--- The node the ring assigns to `id`.
function M.node_for(sup, id) return (call(sup, { "node_for", id })) end

--- The nodes of this distributed supervisor.
function M.nodes(sup) return (call(sup, { "nodes" })) end

--- Call child `id` wherever it runs (see `pogo.call`); raises `noproc` if it runs nowhere.
function M.call(sup, id, request, timeout)
  local pid = M.whereis(sup, id)
  if not pid then error("noproc: child " .. tostring(id) .. " is not running", 2) end
  return pogo.call(pid, request, timeout)
end

--- Cast to child `id` wherever it runs; false if it runs nowhere.
function M.cast(sup, id, msg)
  local pid = M.whereis(sup, id)
  if not pid then return false end
  return pogo.cast(pid, msg)
end

return M
