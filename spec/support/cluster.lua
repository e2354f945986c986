--- The cluster helper of the multi-node specs: `pogo.local_cluster` (node OS
-- processes on 127.0.0.1 with ephemeral ports, rpc, SIGTERM/SIGKILL/SIGSTOP,
-- every process killed by pid in teardown and when the spec process exits).
return require "pogo.local_cluster"
