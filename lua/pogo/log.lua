--- pogo.log: the one logger of a node (as Erlang's `logger`).
--
-- Every line the project writes goes through here, so a host can filter it
-- by level and route it into its own logger with one handler.
--
-- **Levels**, lowest first: `debug`, `info`, `notice`, `warning`, `error`.
-- A line below the current level (default `"info"`, or `$POGO_LOG_LEVEL` when
-- it names a level; `bin/pogo --log-level`) costs one comparison: it is not
-- formatted.
--
-- **Calls.** `log.info(fmt, ...)` formats with `string.format`; with no
-- arguments after it, `fmt` is the message as it is (so a `%` in it is
-- harmless). A logging call never raises into its caller: a format error
-- logs the format and its arguments with the error; a first argument that is
-- not a string logs every argument as `print` would.
--
-- **Metadata.** Each line carries a table `meta`: `node` (this node's name),
-- `pid` (the calling process), `time` (integer microseconds since the Unix
-- epoch, as Erlang's `logger:timestamp()`), `module` when known, and any
-- other `key = value` fields. A caller adds fields with a logger that
-- carries them, as Erlang's `logger` takes a metadata map and Lua loggers
-- are usually objects:
--
--     local log = require("pogo.log").with { module = "my.worker" }
--     log.info("started %d jobs", n)            -- module=my.worker
--     log.with({ peer = node }).warning("lost") -- module=my.worker peer=...
--
-- `log.info(...)` and `log:info(...)` both work. Fields given by the caller
-- win over the ones filled in (node, pid, time).
--
-- **Handler.** `set_handler(fn)` sends every line that passes the level to
-- `fn(level, msg, meta)` instead of stderr (`set_handler(nil)` restores the
-- default). A handler that raises does not break the caller: that line goes
-- to the default handler, and the first failure of each handler is reported
-- once. A handler that logs is not called again from inside itself (those
-- lines go to the default handler). A handler must not block.
--
-- **Default line** (one line on stderr, for journald and `grep`):
--
--     2024-05-01T12:00:00.123Z warning a@127.0.0.1:4370 lost b module=pogo.dist reason="connection closed"
--
-- time (ISO-8601, UTC, milliseconds), level, node, message, then the
-- metadata other than node, pid and time as ` key=value` (module first, the
-- others sorted). Keys and values with spaces, quotes, `=` or control
-- characters are quoted; newlines in the message and in values are written as `\n`, so a
-- line is always one line.
--
-- **From C.** `emit(level, msg, meta)` is the entry for the C core: the
-- transport (`csrc/dist/log.c`) hands each of its lines to it, with `module =
-- "pogo.dist"` and `peer` (the node name or address the line is about). The
-- message is already formatted; node and time are filled in, not pid (no
-- process logged it). It never raises.
-- @module pogo.log
local uv = require "luv"

local M = {}

local LEVELS = { debug = 1, info = 2, notice = 3, warning = 4, error = 5 }
local NAMES = { "debug", "info", "notice", "warning", "error" }
local LEVEL_LIST = table.concat(NAMES, ", ")

local current = LEVELS.info

-- pogo.core gives the node name and the caller's pid; pogo.log works without it
local has_core, core = pcall(require, "pogo.core")
if not has_core then core = nil end

local function safe_tostring(v)
  local ok, s = pcall(tostring, v)
  if ok and type(s) == "string" then return s end
  return "<" .. type(v) .. ": tostring failed>"
end

local function args_text(...)
  local out = {}
  for i = 1, select("#", ...) do out[i] = safe_tostring((select(i, ...))) end
  return table.concat(out, " ")
end

-- The message of a logging call; never raises.
local function message(fmt, ...)
  if type(fmt) ~= "string" then return args_text(fmt, ...) end
  if select("#", ...) == 0 then return fmt end
  local ok, s = pcall(string.format, fmt, ...)
  if ok then return s end
  return string.format("%s [log format error: %s; arguments: %s]", fmt, safe_tostring(s), args_text(...))
end

-- ---- the default line ----

local ESCAPES = { ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t", ['"'] = '\\"', ["\\"] = "\\\\" }

local function escape_controls(s)
  return (s:gsub("[%c]", function(c) return ESCAPES[c] or string.format("\\x%02x", c:byte()) end))
end

local function quote(v)
  local s = safe_tostring(v)
  if s ~= "" and not s:find('[%s%c"=\\]') then return s end
  return '"' .. s:gsub('[%c"\\]', function(c)
    return ESCAPES[c] or string.format("\\x%02x", c:byte())
  end) .. '"'
end

local FILLED = { node = true, pid = true, time = true }

--- The default line for `(level, msg, meta)`, without its newline (for
-- handlers that want pogo's format, e.g. to write to a file).
-- @tparam string level
-- @tparam string msg
-- @tparam[opt] table meta
-- @treturn string
function M.format(level, msg, meta)
  meta = type(meta) == "table" and meta or {}
  local t = math.tointeger(meta.time)
  local stamp
  if t then
    stamp = os.date("!%Y-%m-%dT%H:%M:%S", t // 1000000) .. string.format(".%03dZ", t % 1000000 // 1000)
  else
    stamp = safe_tostring(meta.time)
  end
  local parts = { stamp, safe_tostring(level), safe_tostring(meta.node or "nonode@nohost"),
                  escape_controls(safe_tostring(msg)) }
  local keys = {}
  for k in pairs(meta) do
    if not FILLED[k] and k ~= "module" then keys[#keys + 1] = k end
  end
  table.sort(keys, function(a, b) return safe_tostring(a) < safe_tostring(b) end)
  if meta.module ~= nil then table.insert(keys, 1, "module") end
  for _, k in ipairs(keys) do
    parts[#parts + 1] = quote(k) .. "=" .. quote(meta[k]) -- (a key with "=" or a space is quoted too)
  end
  return table.concat(parts, " ")
end

--- The default handler: `format(level, msg, meta)` as one line on stderr.
-- @tparam string level
-- @tparam string msg
-- @tparam table meta
function M.default_handler(level, msg, meta)
  io.stderr:write(M.format(level, msg, meta), "\n")
end

-- ---- dispatch ----

local handler = M.default_handler
local handler_failed = false      -- the current handler's failure was reported
local inside = setmetatable({}, { __mode = "k" }) -- coroutines running the handler

local function now_us()
  local sec, usec = uv.gettimeofday()
  if not sec then return nil end
  return sec * 1000000 + usec
end

local function fill(meta, base, no_pid)
  meta = meta or {}
  if base then
    for k, v in pairs(base) do
      if meta[k] == nil then meta[k] = v end
    end
  end
  if meta.node == nil then
    meta.node = core and core.node_name() or "nonode@nohost"
  end
  if meta.pid == nil and core and not no_pid then
    local ok, pid = pcall(core.self)
    if ok then meta.pid = pid end
  end
  if meta.time == nil then meta.time = now_us() end
  return meta
end

local function dispatch(level, msg, meta)
  local h = handler
  local co = coroutine.running()
  if h == M.default_handler or inside[co] then return M.default_handler(level, msg, meta) end
  inside[co] = true
  local ok, err = pcall(h, level, msg, meta)
  inside[co] = nil
  if not ok then
    if not handler_failed and h == handler then
      handler_failed = true
      M.default_handler("error", "pogo.log: the log handler raised: " .. safe_tostring(err)
                        .. "; the lines it fails on are written to stderr", fill({ module = "pogo.log" }))
    end
    M.default_handler(level, msg, meta)
  end
end

local function log_at(n, base, fmt, ...)
  if n < current then return end
  local ok, msg = pcall(message, fmt, ...)
  if not ok then msg = "<log message failed: " .. safe_tostring(msg) .. ">" end
  dispatch(NAMES[n], msg, fill(nil, base))
end

local function check_level(level, what)
  local n = LEVELS[level]
  if not n then
    error(string.format("%s: unknown level '%s' (levels: %s)", what, safe_tostring(level), LEVEL_LIST), 3)
  end
  return n
end

-- A logger table: debug..error, log and with, carrying `base` metadata.
local function logger(obj, base)
  for n, name in ipairs(NAMES) do
    obj[name] = function(first, ...)
      if first == obj then return log_at(n, base, ...) end -- called as obj:name(...)
      return log_at(n, base, first, ...)
    end
  end
  obj.log = function(first, ...)
    if first == obj then return obj.log(...) end
    local n = check_level(first, "pogo.log.log")
    return log_at(n, base, ...)
  end
  obj.with = function(first, meta)
    if first ~= obj then meta = first end
    if type(meta) ~= "table" then
      error("pogo.log.with: metadata table expected, got " .. type(meta), 2)
    end
    local merged = {}
    for k, v in pairs(base or {}) do merged[k] = v end
    for k, v in pairs(meta) do merged[k] = v end
    return logger({}, merged)
  end
  return obj
end

--- Log at level debug. `fmt` and the arguments as `string.format`'s.
-- @function debug
-- @tparam string fmt
-- @param ... the arguments

--- Log at level info.
-- @function info
-- @tparam string fmt
-- @param ... the arguments

--- Log at level notice.
-- @function notice
-- @tparam string fmt
-- @param ... the arguments

--- Log at level warning.
-- @function warning
-- @tparam string fmt
-- @param ... the arguments

--- Log at level error.
-- @function error
-- @tparam string fmt
-- @param ... the arguments

--- Log at a level given by name (raises on an unknown level).
-- @function log
-- @tparam string level
-- @tparam string fmt
-- @param ... the arguments

--- A logger whose lines carry `meta` too (a copy merged with this logger's):
-- it has `debug` .. `error`, `log` and `with`.
-- @function with
-- @tparam table meta e.g. `{module = "my.worker", job = id}`
-- @treturn table the logger
logger(M, nil)

--- Set the level: lines below it are dropped.
-- @tparam string level "debug", "info", "notice", "warning" or "error"
-- @treturn string the previous level
function M.set_level(level)
  local n = check_level(level, "pogo.log.set_level")
  local previous = NAMES[current]
  current = n
  return previous
end

--- The current level's name.
-- @treturn string
function M.level()
  return NAMES[current]
end

--- Whether a line at `level` would be logged (to skip building costly text).
-- @tparam string level
-- @treturn boolean
function M.enabled(level)
  local n = LEVELS[level]
  return n ~= nil and n >= current
end

--- Send every line to `fn(level, msg, meta)` instead of stderr; `nil`
-- restores the default handler. See the module's text for failures.
-- @tparam ?function fn
-- @treturn function the previous handler
function M.set_handler(fn)
  if fn ~= nil and type(fn) ~= "function" then
    error("pogo.log.set_handler: function or nil expected, got " .. type(fn), 2)
  end
  local previous = handler
  handler = fn or M.default_handler
  handler_failed = false
  return previous
end

--- The entry for the C core (the transport): log an already formatted
-- message. `meta` (optional) gives `module` and extra fields; node and time
-- are filled in (not pid: the line comes from no process). Never raises: an
-- unknown level is logged as "error" with the level named in the message.
-- @tparam string level
-- @tparam string msg
-- @tparam[opt] table meta
function M.emit(level, msg, meta)
  local n = LEVELS[level]
  if type(msg) ~= "string" then msg = safe_tostring(msg) end
  if not n then
    n = LEVELS.error
    msg = "[unknown log level " .. safe_tostring(level) .. "] " .. msg
  end
  if n < current then return end
  local copy = {}
  if type(meta) == "table" then
    for k, v in pairs(meta) do copy[k] = v end
  end
  dispatch(NAMES[n], msg, fill(copy, nil, true))
end

do
  local env = os.getenv("POGO_LOG_LEVEL")
  if env and env ~= "" then
    if LEVELS[env] then
      current = LEVELS[env]
    else
      M.default_handler("warning", string.format("POGO_LOG_LEVEL=%s is not a level (%s); using info",
                        env, LEVEL_LIST), fill({ module = "pogo.log" }))
    end
  end
end

return M
