--- Child specs: validation and normalisation, shared by `pogo.supervisor` and
-- `pogo.dynamic_supervisor`.
--
-- A spec is `{id = any, start = {"module.name", "fn", args...}, restart =
-- "permanent" | "transient" | "temporary", shutdown = ms | "brutal_kill" |
-- "infinity", type = "worker" | "supervisor", modules = {...}}`. The shorthands
-- `"module.name"` and `{"module.name", arg}` call the module's `child_spec(arg)`.
-- @module pogo.child_spec
local pogo = require "pogo"

local M = {}

local RESTART = { permanent = true, transient = true, temporary = true }
local TYPE = { worker = true, supervisor = true }

local function invalid(why, ...)
  return nil, "invalid child spec: " .. string.format(why, ...)
end

local function load_module(name)
  local ok, mod = pcall(require, name)
  if not ok then return nil, mod end
  if type(mod) ~= "table" then return nil, "module '" .. name .. "' did not return a table" end
  return mod
end

--- Validate and normalise a child spec.
-- @param spec a spec table or a shorthand
-- @treturn table|nil a new, normalised spec (defaults filled in)
-- @treturn string|nil `"invalid child spec: <why>"`
function M.normalize(spec)
  if type(spec) == "string" or (type(spec) == "table" and spec.id == nil and spec.start == nil
      and type(spec[1]) == "string") then
    local name, arg
    if type(spec) == "string" then name = spec else name, arg = spec[1], spec[2] end
    local mod, err = load_module(name)
    if not mod then return invalid("unknown module '%s' (%s)", name, tostring(err):match("^[^\n]*")) end
    if type(mod.child_spec) ~= "function" then
      return invalid("module '%s' has no child_spec function", name)
    end
    local ok, s = pcall(mod.child_spec, arg)
    if not ok then return invalid("%s.child_spec raised: %s", name, tostring(s)) end
    if type(s) ~= "table" then return invalid("%s.child_spec did not return a table", name) end
    spec = s
  end
  if type(spec) ~= "table" then return invalid("expected a table, got %s", type(spec)) end
  if spec.id == nil then return invalid("missing id") end
  local sendable, why = pcall(pogo.core.encode, spec.id)
  if not sendable then
    return invalid("%s", (tostring(why):gsub("^value", "id"))) -- ("id.self: cycle cannot be sent")
  end
  local start = spec.start
  if type(start) ~= "table" then return invalid("start must be {module, function, args...}") end
  if type(start[1]) ~= "string" or type(start[2]) ~= "string" then
    return invalid("start must be {module, function, args...} with module and function names")
  end
  local restart = spec.restart == nil and "permanent" or spec.restart
  if not RESTART[restart] then return invalid("unknown restart value '%s'", tostring(restart)) end
  local ctype = spec.type == nil and "worker" or spec.type
  if not TYPE[ctype] then return invalid("unknown type '%s'", tostring(ctype)) end
  local shutdown = spec.shutdown
  if shutdown == nil then shutdown = ctype == "supervisor" and "infinity" or 5000 end
  if type(shutdown) == "number" then
    if shutdown < 0 or shutdown ~= math.floor(shutdown) then
      return invalid("shutdown must be a non-negative integer, \"brutal_kill\" or \"infinity\"")
    end
    shutdown = math.tointeger(shutdown)
  elseif shutdown ~= "brutal_kill" and shutdown ~= "infinity" then
    return invalid("shutdown must be a non-negative integer, \"brutal_kill\" or \"infinity\"")
  end
  local modules = spec.modules
  if modules == nil then modules = { start[1] } end
  if type(modules) ~= "table" then return invalid("modules must be an array of module names") end
  local mod, err = load_module(start[1])
  if not mod then
    return invalid("unknown module '%s' (%s)", start[1], tostring(err):match("^[^\n]*"))
  end
  if type(mod[start[2]]) ~= "function" then
    return invalid("module '%s' has no function '%s'", start[1], start[2])
  end
  local s = {}
  for k, v in pairs(spec) do s[k] = v end
  s.start = table.move(start, 1, #start, 1, {})
  s.restart, s.shutdown, s.type, s.modules = restart, shutdown, ctype, modules
  return s
end

-- ---- the replicated form ----
--
-- A distributed supervisor gives every spec to every node of its scope, in a
-- pg group, for as long as the child is requested: 100,000 children are
-- 100,000 specs on each node. Its replicated form leaves out the defaults
-- that `normalize` filled in (`restart` "permanent", `type` "worker", the
-- type's `shutdown`, `modules` `{start module}`), and a metatable reads them
-- back, so the code that reads a spec's fields sees the normalised spec:
-- 168 bytes less per spec decoded on each node (266 instead of 434 bytes
-- for the benchmark's spec), and about 40 fewer in pg's key of its group.
-- Tables are encoded raw (metatables ignored), so the canonical bytes of a
-- replicated spec are those of its compact table.

local DEFAULT_MODULES = setmetatable({}, { __mode = "v" }) -- module name -> {name} (shared, read-only)

local function default_modules(name)
  local m = DEFAULT_MODULES[name]
  if m == nil and type(name) == "string" then
    m = { name }
    DEFAULT_MODULES[name] = m
  end
  return m
end

local DEFAULTS = {
  __index = function(s, k)
    if k == "restart" then return "permanent" end
    if k == "type" then return "worker" end
    if k == "shutdown" then return rawget(s, "type") == "supervisor" and "infinity" or 5000 end
    if k == "modules" then
      local start = rawget(s, "start")
      return type(start) == "table" and default_modules(start[1]) or nil
    end
  end,
}

--- The replicated form of normalised spec `spec`: a new table without the
-- defaults, which it reads back through its metatable (see above).
-- @tparam table spec a normalised spec
-- @treturn table
function M.compact(spec)
  local s = {}
  for k, v in pairs(spec) do s[k] = v end
  local kind = spec.type
  if s.restart == "permanent" then s.restart = nil end
  if s.type == "worker" then s.type = nil end
  if s.shutdown == (kind == "supervisor" and "infinity" or 5000) and math.type(s.shutdown) ~= "float" then
    s.shutdown = nil
  end
  local m, start = s.modules, s.start
  if type(m) == "table" and type(start) == "table" and m[1] == start[1] and next(m, next(m)) == nil
      and getmetatable(m) == nil then
    s.modules = nil
  end
  return setmetatable(s, DEFAULTS)
end

--- Read the defaults of replicated spec `spec` (decoded from its canonical
-- bytes, without its metatable) back through the metatable; returns it.
-- @tparam table spec
-- @treturn table
function M.with_defaults(spec)
  if type(spec) == "table" and getmetatable(spec) == nil then setmetatable(spec, DEFAULTS) end
  return spec
end

--- A normalised spec of its own (every field present, no metatable) from a
-- replicated one, for the caller to keep.
-- @tparam table spec
-- @treturn table
function M.expand(spec)
  local s = {}
  for k, v in pairs(spec) do s[k] = v end
  s.restart, s.type, s.shutdown = spec.restart, spec.type, spec.shutdown
  if s.modules == nil and type(s.start) == "table" then s.modules = { s.start[1] } end
  return s
end

--- Start the child of a normalised spec: `require(m)[f](args...)`.
-- Never raises: a start that raises, returns nil, or whose module is missing
-- gives `nil, err`.
-- @treturn pid|nil
-- @treturn[opt] string error
function M.start(spec)
  local start = spec.start
  local mod, err = load_module(start[1])
  if not mod then return nil, "module '" .. start[1] .. "' cannot be loaded: " .. tostring(err) end
  local f = mod[start[2]]
  if type(f) ~= "function" then return nil, "module '" .. start[1] .. "' has no function '" .. start[2] .. "'" end
  local ok, pid, e = pcall(f, table.unpack(start, 3, #start))
  if not ok then return nil, "start raised: " .. tostring(pid) end
  if pid == nil then return nil, e == nil and "start returned nil" or e end
  return pid
end

--- Terminate a running child the way its spec says, and wait until it is gone:
-- exit signal "shutdown", then "kill" after `shutdown` ms ("brutal_kill": kill
-- at once; "infinity": wait as long as it takes). The caller's link to it is
-- removed first, and an EXIT from it already queued is taken: the child had
-- ended by itself, with that EXIT's reason.
-- @param pid the child
-- @param shutdown the spec's `shutdown` value
-- @return the child's exit reason
-- @treturn boolean whether it was killed at the end of its `shutdown` time
function M.shutdown(pid, shutdown)
  local mref = pogo.monitor(pid)
  pogo.unlink(pid)
  local exited = pogo.receive(function(m) return type(m) == "table" and m[1] == "EXIT" and m[2] == pid end, 0)
  local function is_down(m) return type(m) == "table" and m[1] == "DOWN" and m[2] == mref end
  local down, killed
  if exited then
    down = { nil, nil, nil, exited[3] } -- (the DOWN says "noproc", and comes at once)
    pogo.receive(is_down)
  elseif shutdown == "brutal_kill" then
    pogo.exit(pid, "kill")
  else
    pogo.exit(pid, "shutdown")
    down = pogo.receive(is_down, shutdown ~= "infinity" and shutdown or nil)
    if not down then
      pogo.exit(pid, "kill")
      killed = true
    end
  end
  down = down or pogo.receive(is_down)
  return down[4], killed == true
end

return M
