-- A script for bin/pogo (spec/log_spec.lua): logs through pogo.log in the way
-- its first argument names, then stops the node (bin/pogo exits 0).
--   lines      a debug, an info and a warning line with metadata
--   raising    two lines through a handler that raises
--   recursive  one line through a handler that logs itself
--   stophook   a pogo.on_stop hook that raises (pogo.stop logs it)
--   luverror   a luv timer callback that raises (the core logs it), then
--              the stop from another timer callback
local pogo = require "pogo"
local log = pogo.log
local mode = ...
if mode == "raising" then
  log.set_handler(function() error("the handler broke on purpose") end)
  log.info("first line")
  log.info("second line")
elseif mode == "stophook" then
  pogo.on_stop(function() error("the hook broke on purpose", 0) end)
elseif mode == "luverror" then
  local uv = require "luv"
  local t = uv.new_timer()
  t:start(1, 0, function()
    t:close()
    error("the callback broke on purpose")
  end)
  local later = uv.new_timer()
  later:start(50, 0, function()
    later:close()
    pogo.stop()
  end)
  return
elseif mode == "recursive" then
  log.set_handler(function(_, msg) log.warning("the handler saw: %s", msg) end)
  log.info("outer line")
else
  log.debug("a debug line")
  log.info("an info line %d", 42)
  log.with({ module = "spec.log", peer = "a b", n = 3 }).warning("two\nlines")
end
pogo.stop()
