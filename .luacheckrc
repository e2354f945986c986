-- luacheck configuration for pogo (make lint)
std = "lua54"
files["spec"] = { std = "+busted" }
-- a Prosody module runs with Prosody's globals: its module object and prosody
files["examples/embed/prosody"] = { globals = { "module" }, read_globals = { "prosody" } }
