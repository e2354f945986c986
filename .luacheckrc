-- luacheck configuration for pogo (make lint)
std = "lua54"
files["spec"] = { std = "+busted" }
